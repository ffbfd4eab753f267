"""cleanplate: background matting with a clean plate (BackgroundMattingV2)."""

from .models import MattingBase, MattingRefine

__version__ = "0.1.0"
__all__ = ["MattingBase", "MattingRefine", "__version__"]
