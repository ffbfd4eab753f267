"""Moved to :mod:`cleanplate.plate.align` (fits and checks: :mod:`cleanplate.plate.geometry`).

This alias keeps old imports working.
"""

from .plate.align import Alignment, AlignmentWarning, PlateCoverageWarning, align_plate, estimate_homography, warp_plate
from .plate.geometry import trimmed_residual

__all__ = [
    "Alignment",
    "AlignmentWarning",
    "PlateCoverageWarning",
    "align_plate",
    "estimate_homography",
    "trimmed_residual",
    "warp_plate",
]
