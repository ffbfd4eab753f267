"""BGMv2 networks written from the paper, loading the official checkpoints unchanged."""

from .matting import BACKBONES, MattingBase, MattingRefine
from .refiner import REFINE_MODES

__all__ = ["BACKBONES", "REFINE_MODES", "MattingBase", "MattingRefine"]
