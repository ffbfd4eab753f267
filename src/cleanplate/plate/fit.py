"""Fit a clean plate to the size of the frame it belongs to.

The network compares frame and plate pixel by pixel, so the plate must cover the same view at
the same size. A plate of another size but the same aspect (a phone photo vs. a video frame) is
resized; any other aspect means the plate shows something else, which cannot be guessed.
"""

from __future__ import annotations

import numpy as np

from ..compose import resize
from ..errors import PlateMismatchError

ASPECT_TOLERANCE = 0.01  # relative; 1920x1080 vs 1280x720 is exact, 1280x720 vs 1282x720 passes


def aspect_matches(plate_size: tuple[int, int], frame_size: tuple[int, int], tol: float = ASPECT_TOLERANCE) -> bool:
    """True when (h, w) sizes have aspect ratios within ``tol`` (relative) of each other."""
    ph, pw = plate_size
    fh, fw = frame_size
    return abs((pw / ph) / (fw / fh) - 1.0) <= tol


def match_plate(plate: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """Return ``plate`` (H×W×C array) sized to ``frame_size`` = (height, width).

    Same size → unchanged; same aspect → resized (area when shrinking, bilinear when growing);
    other aspect → :class:`PlateMismatchError` naming both sizes.
    """
    size = tuple(int(v) for v in frame_size[:2])
    if plate.shape[:2] == size:
        return plate
    if not aspect_matches(plate.shape[:2], size):
        ph, pw = plate.shape[:2]
        raise PlateMismatchError(
            f"plate is {pw}x{ph} but the frame is {size[1]}x{size[0]} (another aspect ratio); "
            "crop the plate to the same framing, or use --align (align=True) for a handheld plate"
        )
    return resize(plate, size)  # type: ignore[arg-type]
