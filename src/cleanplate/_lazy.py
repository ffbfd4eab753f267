"""Package names imported on first use (PEP 562): re-exports that do not load what they name.

``import cleanplate`` (and ``cleanplate --version``) must not import torch; the keyer's
``from cleanplate.plate import geometry`` must not load PyAV. A package lists its names and the
submodule each lives in; :func:`lazy_names` gives it the module ``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from typing import Any


def lazy_names(package: str, names: dict[str, str], exported: Iterable[str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps a name to its (relative) submodule."""
    public = set(exported)

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(names[name], package), name)
            setattr(sys.modules[package], name, value)  # imported once
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | public)

    return __getattr__, __dir__
