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


# ------------------------------------------------------------------ cheap checks of a fitted plate


class PlateWarning(UserWarning):
    """The plate probably does not suit the frame (greyscale vs colour, camera moved); the matte may be wrong.

    ``index``: the frame's position in the batch it came from (None for a single frame).
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


GREY_SPREAD = 3.0  # a pixel whose channels differ by at most this (of 255) is grey (JPEG leaves a little chroma)
COLOUR_SPREAD = 10.0  # a plate whose mean channel spread exceeds this is in colour
OFFSET_MIN_PX = 3.0  # a global shift below this is ordinary jitter, not a moved camera
OFFSET_REL = 0.004  # ... nor below this fraction of the long side
OFFSET_MIN_RESPONSE = 0.05  # phase-correlation peak below this: no clear shift measured


def _sample(image: np.ndarray, pixels: int = 65_536) -> np.ndarray:
    """A strided subsample of an H×W×3 image (at most about ``pixels`` pixels), float32."""
    h, w = image.shape[:2]
    step = max(1, int(np.sqrt(h * w / pixels)))
    return image[::step, ::step, :3].astype(np.float32)


def channel_spread(image: np.ndarray) -> np.ndarray:
    """Per pixel max − min over R, G, B of a subsample (0 for a grey pixel)."""
    s = _sample(image)
    return s.max(axis=2) - s.min(axis=2)


def is_greyscale(image: np.ndarray) -> bool:
    """True when (nearly) every pixel of an RGB image is grey (a black-and-white frame stored as RGB)."""
    return float(np.percentile(channel_spread(image), 99)) <= GREY_SPREAD


def to_grey_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB → the same image in grey (ITU-R 601 luma, as Pillow's 'L'), still H×W×3."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_RGB2GRAY)
    return np.repeat(grey[:, :, None], 3, axis=2)


def match_greyscale(plate: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, str | None]:
    """A colour plate for a greyscale frame is turned grey too (else every coloured pixel looks like a subject).

    Returns the plate to use and, when it was converted, one line saying why.
    """
    if not is_greyscale(frame) or float(channel_spread(plate).mean()) <= COLOUR_SPREAD:
        return plate, None
    note = "the frame is greyscale but the plate is in colour: matting against a grey copy of the plate"
    return to_grey_rgb(plate), note


def plate_offset(frame: np.ndarray, plate: np.ndarray, long_side: int = 256) -> tuple[float, float] | None:
    """The global shift (dx, dy) in frame pixels that best lines ``plate`` up with ``frame``
    (same size, RGB), from phase correlation on small grey copies; None when no clear peak.

    A coarse guess: a large subject pulls it by pixels and a periodic background (brick) can put a
    peak where no shift is; :func:`cleanplate.models.guided.register.measure_shift` checks it.
    """
    import cv2

    h, w = frame.shape[:2]
    if min(h, w) < 16:
        return None
    scale = min(1.0, long_side / max(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))

    def small(img: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return grey - float(grey.mean())

    window = cv2.createHanningWindow(size, cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(small(plate), small(frame), window)
    if not np.isfinite(response) or response < OFFSET_MIN_RESPONSE:
        return None
    return dx * w / size[0], dy * h / size[1]


def shift_note(offset: tuple[float, float] | None, size: tuple[int, int], tolerance: float = 0.0) -> str | None:
    """The warning for a measured plate ``offset`` (dx, dy) on a frame of ``size`` (h, w), or None
    when it is jitter or within the ``tolerance`` (fraction of the long side) the model registers itself.

    The offset comes from :func:`cleanplate.models.guided.register.measure_shift` (robust to the
    subject); :func:`plate_offset` alone is its coarse first guess.
    """
    if offset is None:
        return None
    dx, dy = offset
    long_side = max(size[:2])
    if np.hypot(dx, dy) < max(OFFSET_MIN_PX, max(OFFSET_REL, tolerance) * long_side):
        return None
    beyond = " (more than this model registers by itself)" if tolerance > 0 else ""
    return (
        f"the plate looks shifted by about ({dx:+.0f}, {dy:+.0f}) px against the frame{beyond} (a moved or "
        "handheld camera?); the background will leak into the matte: try --align (align=True)"
    )
