"""Pure compositing helpers on numpy arrays: colours, cover-resize and the over operator.

Conventions: images are H×W×3 (RGB), alpha is H×W, both float in [0, 1] unless a function
says uint8. The foreground is *straight* (not premultiplied), as MattingRefine predicts it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from .errors import InputError

COLORS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "red": (255, 0, 0),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
    "yellow": (255, 255, 0),
    "chroma-green": (0, 177, 64),
    "chroma-blue": (0, 71, 187),
}
_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")
_TRIPLE = re.compile(r"\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*")


def parse_color(spec: str | Sequence[int]) -> tuple[int, int, int]:
    """'green', '#00ff00', '#0f0', '0,255,0' or an (r, g, b) sequence of 0..255 → (r, g, b)."""
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in COLORS:
            return COLORS[text]
        if m := _HEX.fullmatch(text):
            digits = m.group(1)
            if len(digits) == 3:
                digits = "".join(c * 2 for c in digits)
            return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
        if m := _TRIPLE.fullmatch(text):
            return _check_rgb(tuple(int(g) for g in m.groups()), spec)
        names = ", ".join(COLORS)
        raise InputError(f"unknown colour {spec!r}: use a name ({names}), '#rrggbb' or 'r,g,b'")
    try:
        values = tuple(spec)
    except TypeError:
        raise InputError(f"a colour must be a string or an (r, g, b) triple; got {spec!r}") from None
    if len(values) != 3 or not all(isinstance(v, (int, np.integer)) for v in values):
        raise InputError(f"a colour triple must be three integers 0..255; got {spec!r}")
    return _check_rgb(tuple(int(v) for v in values), spec)


def _check_rgb(rgb: tuple[int, ...], spec: object) -> tuple[int, int, int]:
    if not all(0 <= v <= 255 for v in rgb):
        raise InputError(f"colour values must be in 0..255; got {spec!r}")
    return rgb  # type: ignore[return-value]


def is_color(spec: object) -> bool:
    """True when ``spec`` parses as a colour (used to tell ``--background green`` from a file name)."""
    try:
        parse_color(spec)  # type: ignore[arg-type]
    except InputError:
        return False
    return True


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``(height, width)``: area averaging when shrinking (no aliasing), bilinear when growing."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrinking = h * w < image.shape[0] * image.shape[1]
    out = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if image.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing singleton channel
        out = out[:, :, None]
    return out


def cover_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``image`` to cover ``(height, width)`` keeping its aspect, then centre-crop to it."""
    h, w = size
    ih, iw = image.shape[:2]
    scale = max(h / ih, w / iw)
    # Round up so the scaled image always covers the target, even after float error.
    sh, sw = max(h, int(np.ceil(ih * scale - 1e-6))), max(w, int(np.ceil(iw * scale - 1e-6)))
    scaled = resize(image, (sh, sw))
    top, left = (sh - h) // 2, (sw - w) // 2
    return scaled[top : top + h, left : left + w]


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``foreground * alpha + background * (1 - alpha)`` in float32.

    ``foreground`` H×W×3 and ``alpha`` H×W (or H×W×1) in [0, 1]; ``background`` H×W×3 or a
    broadcastable colour such as shape (3,), in the same [0, 1] range.
    """
    a = np.asarray(alpha, dtype=np.float32)
    if a.ndim == 2:
        a = a[:, :, None]
    fg = np.asarray(foreground, dtype=np.float32)
    bg = np.asarray(background, dtype=np.float32)
    return fg * a + bg * (1.0 - a)


def background_array(background: object, size: tuple[int, int]) -> np.ndarray:
    """A colour spec, an image (path/PIL/array, cover-resized) → float32 H×W×3 (or (3,)) in [0, 1]."""
    from .io.image import as_rgb  # local: io imports PIL, which compose's pure helpers don't need

    if isinstance(background, (str, tuple, list)) and is_color(background):
        return np.asarray(parse_color(background), dtype=np.float32) / 255.0  # type: ignore[arg-type]
    rgb = as_rgb(background, what="background")  # type: ignore[arg-type]
    return cover_resize(rgb, size).astype(np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float in [0, 1] → uint8 with rounding (values outside are clipped)."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def resolve_background(spec: str | None) -> Any:
    """A colour string as is, or the decoded image; one-line error when it is neither."""
    from pathlib import Path

    from .io.image import read_image

    if spec is None or is_color(spec):
        return spec or "green"
    if not Path(spec).exists():
        raise InputError(f"--background {spec!r} is neither a colour (name, #rrggbb, r,g,b) nor an image file")
    return read_image(spec)
