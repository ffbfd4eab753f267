"""The plate-guided matting model (built-in ``default``): keyed features, learned correction, full-res edges."""

from .net import GuidedMatting

__all__ = ["GuidedMatting"]
