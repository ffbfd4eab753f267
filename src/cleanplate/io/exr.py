"""Images beyond 8 bits: OpenEXR (half float, premultiplied) and 16-bit PNG.

Compositors work in float and expect EXR colour premultiplied by alpha (Nuke, Fusion, After
Effects all read an RGBA EXR as premultiplied), so :func:`write_exr` takes the straight
foreground the models produce and premultiplies it. Half float has 11 significant bits, so an
alpha in [0, 1] survives within 2⁻¹¹ ≈ 4.9e-4 (relative; finer near 0) — eight times finer than an
8-bit step. OpenCV's wheels are built without OpenEXR, so the ``OpenEXR`` package (the
Academy Software Foundation's bindings; ``pip install 'cleanplate[exr]'``) does the work.

Channels: RGBA → ``R G B A``; RGB → ``R G B``; one channel → ``Y`` (a grey layer: matte, shadow,
confidence). ZIP compression (lossless).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError, MissingDependencyError, OutputError
from .atomic import atomic_path

HALF_EPS = 2.0**-11  # relative precision of a half float


def require_openexr():  # -> the OpenEXR module
    """The OpenEXR module, or one :class:`MissingDependencyError` line that says what to install."""
    try:
        import OpenEXR
    except ImportError as exc:
        raise MissingDependencyError(
            "EXR output needs the OpenEXR package: pip install 'cleanplate[exr]' (or pip install OpenEXR)"
        ) from exc
    return OpenEXR


def _as_float(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32)
    raise InputError(f"cannot write an array of dtype {arr.dtype} as EXR")


def exr_channels(image: np.ndarray, *, premultiply: bool = True) -> dict[str, np.ndarray]:
    """Channel name → half-float (H, W) plane for a grey, RGB or straight RGBA image in [0, 1]."""
    arr = _as_float(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return {"Y": arr.astype(np.float16)}
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"cannot write an array of shape {arr.shape} as EXR")
    if arr.shape[2] == 4 and premultiply:
        arr = np.concatenate([arr[:, :, :3] * arr[:, :, 3:], arr[:, :, 3:]], axis=2)
    names = "RGBA"[: arr.shape[2]]
    return {name: np.ascontiguousarray(arr[:, :, i]).astype(np.float16) for i, name in enumerate(names)}


def write_exr_file(path: str | os.PathLike, image: np.ndarray, *, premultiply: bool = True) -> Path:
    """Write ``image`` to ``path`` as it is (not atomic; :func:`write_exr` is): see the module docstring."""
    exr = require_openexr()
    channels = exr_channels(image, premultiply=premultiply)
    header = {"compression": exr.ZIP_COMPRESSION, "type": exr.scanlineimage}
    try:
        with exr.File(header, channels) as f:
            f.write(str(path))
    except (RuntimeError, OSError) as exc:
        raise OutputError(f"cannot write {path}: {exc}") from exc
    return Path(path)


def write_exr(path: str | os.PathLike, image: np.ndarray, *, force: bool = False, premultiply: bool = True) -> Path:
    """Atomically write a grey, RGB or straight RGBA image (float in [0, 1], or uint8/uint16) as a
    half-float EXR; RGBA is premultiplied. Refuses to overwrite unless ``force``."""
    with atomic_path(path, force) as tmp:
        write_exr_file(tmp, image, premultiply=premultiply)
    return Path(path)


def read_exr(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """(float32 H×W×C array, channel names) of an EXR file: ``RGBA``, ``RGB`` or ``Y`` order,
    as stored (premultiplied RGBA stays premultiplied)."""
    exr = require_openexr()
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    try:
        with exr.File(str(path), separate_channels=True) as f:
            planes = {name: np.asarray(ch.pixels, np.float32) for name, ch in f.channels().items()}
    except (RuntimeError, OSError) as exc:
        raise InputError(f"{path}: not a readable EXR file ({exc})") from exc
    order = [c for c in "RGBA" if c in planes] or sorted(planes)
    return np.stack([planes[c] for c in order], axis=2), "".join(order)


def write_png16(path: str | os.PathLike, image: np.ndarray, *, force: bool = False) -> Path:
    """Atomically write a grey, RGB or RGBA image (float in [0, 1]) as a 16-bit PNG (straight alpha)."""
    import cv2

    arr = _as_float(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise InputError(f"cannot write an array of shape {arr.shape} as an image")
    if not np.isfinite(arr).all():
        raise InputError("image to write contains NaN or infinite values")
    out = np.rint(np.clip(arr, 0, 1) * 65535).astype(np.uint16)
    if out.ndim == 3:
        out = cv2.cvtColor(out, cv2.COLOR_RGBA2BGRA if out.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    with atomic_path(path, force) as tmp:
        if not cv2.imwrite(str(tmp), out, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
            raise OutputError(f"cannot write {path}")
    return Path(path)
