"""Read and write still images as numpy arrays, EXIF-aware on read and atomic on write.

Everything the matting code sees is ``uint8`` H×W×3 RGB; :func:`as_rgb` turns the inputs users
actually have (paths, PIL images, gray/RGBA/float arrays) into that, with one-line errors.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from pathlib import Path
from typing import TypeAlias

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError, OutputError
from .atomic import atomic_path

ImageLike: TypeAlias = str | os.PathLike | Image.Image | np.ndarray

# The one list of still-image suffixes cleanplate reads (folders of inputs, plates, backgrounds,
# ground truth); anything else given as a plate or background is read as a video.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")

# extension -> (PIL format, save options); every option here is lossless except JPEG.
WRITE_FORMATS: dict[str, tuple[str, dict]] = {
    ".png": ("PNG", {"compress_level": 6}),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".tif": ("TIFF", {"compression": "tiff_adobe_deflate"}),
    ".tiff": ("TIFF", {"compression": "tiff_adobe_deflate"}),
    ".webp": ("WEBP", {"lossless": True, "quality": 100, "exact": True}),
}
ALPHA_FORMATS = {"PNG", "TIFF", "WEBP"}


def is_image_path(path: str | os.PathLike) -> bool:
    """True for a still-image suffix (:data:`IMAGE_SUFFIXES`), whatever the case."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to uint8 H×W×3 RGB with the EXIF orientation applied (alpha is dropped)."""
    try:
        return pil_to_rgb(open_image(path))
    except MemoryError as exc:
        raise InputError(f"{path}: not enough memory to decode this image{_size_note(path)}") from exc


def _size_note(path: str | os.PathLike) -> str:
    try:
        h, w = image_size(path)
    except (InputError, MemoryError):
        return ""
    return f" ({w}x{h}, {w * h * 3 / 2**20:.0f} MiB as RGB)"


def _bomb_message(p: Path, exc: Exception) -> str:
    found = [int(n) for n in re.findall(r"\d+", str(exc))]
    pixels = (
        f" ({found[0] / 1e6:.0f} Mpx, more than the {found[1] / 1e6:.0f} Mpx Pillow decodes safely)"
        if len(found) >= 2
        else ""
    )
    return f"{p}: image is too large to decode safely{pixels}"


# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse)
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


def _existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or one :class:`InputError` line when it is missing or a folder."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not an image")
    return p


def image_size(path: str | os.PathLike, *, verify: bool = False) -> tuple[int, int]:
    """(height, width) as :func:`read_image` would return it (EXIF orientation applied), from the
    header only; one :class:`InputError` line for files that are not images, too large ones, and
    (with ``verify``) PNGs whose data is truncated or corrupt (a cheap check: no pixels decoded)."""
    p = _existing_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                w, h = img.size
                fmt = img.format
                orientation = img.getexif().get(0x0112, 1)
            if verify and fmt == "PNG":
                with Image.open(p) as img:
                    img.verify()  # reads every chunk and checks its CRC; decodes nothing
    except UnidentifiedImageError:
        raise InputError(f"{p}: not an image file (or a format Pillow cannot read)") from None
    except Image.DecompressionBombError as exc:
        raise InputError(_bomb_message(p, exc)) from None
    except PermissionError:
        raise InputError(f"{p}: permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{p}: truncated or corrupt image ({reason})") from None
    if w < 1 or h < 1:
        raise InputError(f"{p}: image is empty ({w}x{h})")
    return (w, h) if orientation in _SWAPPING_ORIENTATIONS else (h, w)


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file, turning every failure into one :class:`InputError`."""
    p = _existing_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # above 2x the limit is an error
            img = Image.open(p)
        with img:
            img.load()  # decode now: truncated files fail here, not later
            return ImageOps.exif_transpose(img)
    except UnidentifiedImageError as exc:
        raise InputError(f"{p}: not an image file (or a format Pillow cannot read)") from exc
    except Image.DecompressionBombError as exc:
        raise InputError(_bomb_message(p, exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{p}: truncated or corrupt image ({reason})") from exc


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """PIL image of any mode → uint8 H×W×3 RGB (16-bit and float modes are scaled, alpha dropped)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return gray_to_rgb(np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8))
    if img.mode == "F":
        return as_rgb(np.asarray(img, dtype=np.float32))
    if img.mode != "RGB":
        img = img.convert("RGBA").convert("RGB") if "transparency" in img.info else img.convert("RGB")
    return np.asarray(img, dtype=np.uint8).copy()


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def as_rgb(image: ImageLike, what: str = "image") -> np.ndarray:
    """Any supported image input → contiguous uint8 H×W×3 RGB.

    Accepts a path, a PIL image or an array: H×W gray, H×W×1, H×W×3 RGB or H×W×4 RGBA (alpha
    dropped); uint8, uint16, bool, or float in [0, 1]. ``what`` names the input in errors.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return pil_to_rgb(ImageOps.exif_transpose(image) or image)
    if not isinstance(image, np.ndarray):
        raise InputError(f"{what} must be a path, a PIL image or a numpy array; got {type(image).__name__}")
    return _array_to_rgb(image, what)


def _array_to_rgb(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise InputError(f"{what} must be H×W, H×W×3 (RGB) or H×W×4 (RGBA); got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"{what} is empty (shape {arr.shape})")
    arr = to_uint8(arr, what)
    if arr.ndim == 2:
        arr = gray_to_rgb(arr)
    return np.ascontiguousarray(arr)


def to_uint8(arr: np.ndarray, what: str = "image") -> np.ndarray:
    """uint8 as is; bool → 0/255; uint16 → scaled; float in [0, 1] → rounded to 0..255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return np.rint(arr / 257.0).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and not np.isfinite(arr).all():
            raise InputError(f"{what} contains NaN or infinite values")
        if arr.size and (arr.min() < -1e-3 or arr.max() > 1 + 1e-3):
            raise InputError(f"{what}: float arrays must hold values in [0, 1]; got [{arr.min():.3g}, {arr.max():.3g}]")
        return np.rint(np.clip(arr, 0, 1) * 255).astype(np.uint8)
    raise InputError(f"{what}: unsupported array dtype {arr.dtype} (use uint8, or float in [0, 1])")


def write_format(path: str | os.PathLike) -> tuple[str, dict]:
    """PIL format and options for ``path``'s extension; :class:`InputError` for unsupported ones."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_FORMATS:
        known = ", ".join(sorted(WRITE_FORMATS))
        raise InputError(f"cannot write {Path(path).name!r}: unsupported extension (use one of {known})")
    return WRITE_FORMATS[suffix]


def write_image(path: str | os.PathLike, image: np.ndarray, *, force: bool = False) -> Path:
    """Write a gray, RGB or RGBA array atomically (temp file + rename); refuse to overwrite unless ``force``.

    PNG, TIFF and WEBP are lossless (WEBP in its lossless mode); JPEG is quality 95 and cannot
    hold alpha.
    """
    fmt, options = write_format(path)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise InputError(f"cannot write an array of shape {arr.shape} as an image")
    arr = np.ascontiguousarray(to_uint8(arr, "image to write"))
    if arr.ndim == 3 and arr.shape[2] == 4 and fmt not in ALPHA_FORMATS:
        raise InputError(f"{Path(path).name}: {fmt} cannot store alpha; use .png, .tif or .webp")
    img = Image.fromarray(arr)
    with atomic_path(path, force) as tmp:
        try:
            img.save(tmp, format=fmt, **options)
        except OSError as exc:
            if exc.errno is None:  # a Pillow encoder error rather than the file system
                raise OutputError(f"cannot write {path}: {exc}") from exc
            raise
    return Path(path)
