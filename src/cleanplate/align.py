"""Moved to :mod:`cleanplate.plate.align` (fits and checks: :mod:`cleanplate.plate.geometry`).

This alias keeps old imports working.
"""

from .plate import align as _align
from .plate.align import (  # noqa: F401  (re-exported: the names of _align.__all__)
    Alignment,
    AlignmentWarning,
    PlateCoverageWarning,
    align_plate,
    estimate_homography,
    trimmed_residual,
    warp_plate,
)

__all__ = list(_align.__all__)
