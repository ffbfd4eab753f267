"""Load a clean plate: an image, a clip of the empty scene, or a range of the input's frames.

A clip becomes one plate by a per-pixel temporal median, which also removes anything that moves
through the shot (a passer-by, the subject walking out). Only a bounded, evenly spaced subset of
frames is kept (stride doubling), so a long plate clip never fills memory.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.image import is_image_path
from ..io.video_reader import VideoReader

MAX_PLATE_FRAMES = 25  # odd: the median is a real frame value
MEDIAN_BUDGET_BYTES = 256 * 2**20
MEDIAN_ROWS = 64  # rows per chunk, bounds np.median's temporary copy


def temporal_median(frames: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Per-pixel median of uint8 H×W×C frames → uint8 H×W×C (computed in row chunks)."""
    stack = np.asarray(frames)
    if stack.ndim != 4 or stack.shape[0] == 0:
        raise InputError("a plate needs at least one frame")
    out = np.empty(stack.shape[1:], np.uint8)
    for r in range(0, stack.shape[1], MEDIAN_ROWS):
        chunk = np.median(stack[:, r : r + MEDIAN_ROWS], axis=0)
        out[r : r + MEDIAN_ROWS] = np.clip(np.rint(chunk), 0, 255).astype(np.uint8)
    return out


class _EvenSample:
    """Keep at most ``limit`` evenly spaced items of a stream of unknown length (stride doubling)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.stride = 1
        self.items: list[np.ndarray] = []
        self._seen = 0

    def add(self, item: np.ndarray) -> None:
        if self._seen % self.stride == 0:
            self.items.append(item)
            if len(self.items) > self.limit:
                self.items = self.items[::2]
                self.stride *= 2
        self._seen += 1


def plate_from_clip(
    path: str | Path,
    *,
    frame_range: tuple[int, int | None] | None = None,
    max_frames: int = MAX_PLATE_FRAMES,
) -> np.ndarray:
    """Temporal median of (a subset of) the frames of ``path`` in ``frame_range`` = (a, b)."""
    with VideoReader(path, frame_range=frame_range) as reader:
        frame_bytes = reader.info.width * reader.info.height * 3
        limit = max(1, min(max_frames, MEDIAN_BUDGET_BYTES // max(1, 2 * frame_bytes)))
        sample = _EvenSample(limit)
        for frame in reader:
            sample.add(frame.image)
    if not sample.items:
        where = (
            f"frames {frame_range[0]}:{frame_range[1] if frame_range[1] is not None else ''} of " if frame_range else ""
        )
        raise InputError(f"no plate frames: {where}{path} holds none")
    items = sample.items
    if len(items) % 2 == 0 and len(items) > 1:
        items = items[1:]  # odd count: the median is an actual pixel value, not an average of two
    return temporal_median(items)


def parse_frame_range(text: str, option: str = "--plate-frames") -> tuple[int, int | None]:
    """``'A:B'`` → (A, B) frame indices, B exclusive; ``'A:'`` runs to the end.

    A bare count ``'N'`` is read as ``'0:N'`` (the first N frames) with a :class:`FutureWarning`:
    ``cleanplate live`` once took a count where ``video`` took a range; both take a range now.
    """
    count = re.fullmatch(r"\s*(\d+)\s*", text or "")
    if count is not None:
        n = int(count.group(1))
        if n < 1:
            raise InputError(f"{option} {text!r}: the plate needs at least one frame")
        warnings.warn(
            f"{option} {n} is read as {option} 0:{n}; a bare frame count is deprecated, write the range A:B",
            FutureWarning,
            stacklevel=2,
        )
        return 0, n
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d*)\s*", text or "")
    if m is None:
        raise InputError(f"{option} {text!r}: use A:B (frame indices, B exclusive), e.g. 0:30")
    a = int(m.group(1))
    b = int(m.group(2)) if m.group(2) else None
    if b is not None and b <= a:
        raise InputError(f"{option} {text!r}: the end must be after the start")
    return a, b


def load_plate(
    plate: str | Path | np.ndarray | None,
    *,
    source: str | Path | None = None,
    frame_range: tuple[int, int | None] | None = None,
) -> np.ndarray:
    """The plate as uint8 H×W×3 RGB from an array, an image file, a video clip, or ``source`` frames."""
    if frame_range is not None:
        if plate is not None:
            raise InputError("give either a plate or plate frames of the input, not both")
        if source is None:
            raise InputError("plate frames need the input video")
        return plate_from_clip(source, frame_range=frame_range)
    if plate is None:
        raise InputError("a clean plate is needed: --plate IMAGE|VIDEO or --plate-frames A:B")
    if isinstance(plate, np.ndarray):
        from ..io.image import as_rgb

        return as_rgb(plate, what="plate")
    path = Path(plate)
    if not path.exists():
        raise InputError(f"plate {path}: no such file")
    if is_image_path(path):
        from ..io.image import read_image

        return read_image(path)  # a still image; anything else is read as a clip
    return plate_from_clip(path)
