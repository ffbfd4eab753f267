"""cleanplate: background matting with a clean plate (BackgroundMattingV2).

>>> import cleanplate                                       # doctest: +SKIP
>>> matter = cleanplate.load("pytorch_mobilenetv2.pth")     # or load() for the built-in model
>>> matte = matter.matte("frame.jpg", "plate.jpg")
>>> matte.save("frame.png")                                 # RGBA, straight alpha

Names are imported on first use so ``import cleanplate`` (and ``cleanplate --version``) stays
fast; torch and OpenCV load only when a model or image function is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._version import __version__

_LAZY = {
    "load": ".api",
    "Matter": ".api",
    "Matte": ".api",
    "MattingBase": ".models",
    "MattingRefine": ".models",
}
__all__ = ["Matte", "Matter", "MattingBase", "MattingRefine", "__version__", "load"]

if TYPE_CHECKING:
    from .api import Matte, Matter, load
    from .models import MattingBase, MattingRefine


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
