"""``cleanplate serve``: an HTTP API (FastAPI) and a browser app for matting images and videos.

>>> from cleanplate.serve import ServeConfig, create_app      # doctest: +SKIP
>>> app = create_app(ServeConfig(model="classical"))          # run with uvicorn.run(app)

Needs the ``serve`` extra (``pip install 'cleanplate[serve]'``). Everything the server uses from
the rest of cleanplate goes through :mod:`cleanplate.serve.adapter`.
"""

from __future__ import annotations

from .config import Limits, ServeConfig, is_loopback

__all__ = ["Limits", "ServeConfig", "create_app", "is_loopback"]


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - re-exported lazily: FastAPI loads on first use
    from .app import create_app as build

    return build(*args, **kwargs)
