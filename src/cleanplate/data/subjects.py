"""Ground-truth subjects (foreground colour + alpha) read from a folder.

Layout: ``<id>_fgr.png`` + ``<id>_pha.png`` (clean foreground), or ``<id>_img.jpg|png`` +
``<id>_pha.png`` (a photo whose colours still contain its old background: the foreground is
estimated from image and alpha). A ``manifest.json`` beside or above the folder, when present,
supplies licence, kind and ``fgr_clean`` per id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..io.image import is_image_path

PEOPLE_PREFIXES = ("vm_", "p3m_")


@dataclass
class Subject:
    id: str
    fgr: np.ndarray  # float32 HxWx3 in [0, 1]
    pha: np.ndarray  # float32 HxW in [0, 1]
    kind: str = "object"  # "person" | "object" | "procedural"
    license: str = "unknown"
    meta: dict = field(default_factory=dict)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, radii: tuple[int, ...] = (45, 7)) -> np.ndarray:
    """Blur-fusion foreground estimate (Forte & Pitié 2021): colours where alpha says subject.

    Averages of F and B are taken with alpha-weighted box blurs at a coarse then a fine radius,
    and each pixel's F is corrected so that alpha*F + (1-alpha)*B reproduces the image.
    """
    img = image.astype(np.float32)
    a2 = alpha.astype(np.float32)
    a = a2[..., None]
    fg, bg = img.copy(), img.copy()
    for r in radii:
        k = (r, r)
        wa = cv2.blur(a2, k)[..., None]
        wb = 1.0 - wa
        f_mean = cv2.blur(fg * a, k) / (wa + 1e-5)
        b_mean = cv2.blur(bg * (1 - a), k) / (wb + 1e-5)
        residual = img - a * f_mean - (1 - a) * b_mean
        fg = np.clip(f_mean + a * residual, 0, 1)
        bg = np.clip(b_mean + (1 - a) * residual, 0, 1)
    return fg.astype(np.float32)


def snap_alpha(pha: np.ndarray, tol: float = 2.5 / 255) -> np.ndarray:
    """Snap near-0/1 values to exactly 0/1: JPEG-sourced mattes carry ~1/255 over the whole frame,
    which would teach a network a faint veil over the background."""
    out = pha.copy()
    out[out < tol] = 0
    out[out > 1 - tol] = 1
    return out


def read_rgb(path: str | Path) -> np.ndarray:
    """float32 HxWx3 RGB in [0, 1]."""
    arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if arr is None:
        raise InputError(f"{path}: not an image file or unreadable")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def read_alpha(path: str | Path) -> np.ndarray:
    """float32 HxW in [0, 1] from an 8- or 16-bit gray image (or the alpha channel of RGBA)."""
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError(f"{path}: not an image file or unreadable")
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    if arr.ndim == 3:
        arr = arr[..., 3] if arr.shape[2] == 4 else arr[..., 0]
    return arr.astype(np.float32) / scale


def manifest_info(folder: Path) -> dict[str, dict]:
    for parent in (folder, *folder.parents[:2]):
        path = parent / "manifest.json"
        if path.is_file():
            try:
                return {s["id"]: s for s in json.loads(path.read_text()).get("gt_subjects", [])}
            except (ValueError, KeyError, TypeError):
                return {}
    return {}


def list_subject_ids(folder: str | Path) -> list[str]:
    folder = Path(folder)
    return sorted(p.name[: -len("_pha.png")] for p in folder.glob("*_pha.png"))


def resize_long(img: np.ndarray, long_side: int | None) -> np.ndarray:
    """Downsize (area) so the long side is at most ``long_side``; never upsizes."""
    if not long_side:
        return img
    h, w = img.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1:
        return img
    return cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def load_subject(
    folder: str | Path, subject_id: str, *, long_side: int | None = None, info: dict | None = None
) -> Subject:
    """One subject; ``long_side`` downsizes on load (training does not need 1080p subjects)."""
    folder = Path(folder)
    info = info or {}
    pha_path = folder / f"{subject_id}_pha.png"
    fgr_path = folder / f"{subject_id}_fgr.png"
    img_paths = [p for p in (folder / f"{subject_id}_img.jpg", folder / f"{subject_id}_img.png") if p.exists()]
    pha = read_alpha(pha_path)
    if fgr_path.exists():
        fgr, clean = read_rgb(fgr_path), bool(info.get("fgr_clean", True))
    elif img_paths:
        fgr, clean = read_rgb(img_paths[0]), False
    else:
        raise InputError(f"subject {subject_id}: no {subject_id}_fgr.png or {subject_id}_img.jpg in {folder}")
    if fgr.shape[:2] != pha.shape:
        raise InputError(f"subject {subject_id}: image {fgr.shape[:2]} and alpha {pha.shape} differ in size")
    fgr, pha = resize_long(fgr, long_side), resize_long(pha, long_side)
    pha = snap_alpha(pha)
    if not clean:
        fgr = estimate_foreground(fgr, pha)
    kind = "person" if subject_id.startswith(PEOPLE_PREFIXES) else "object"
    return Subject(subject_id, fgr, pha, kind, str(info.get("license", "unknown")), dict(info))


def load_subjects(folder: str | Path, ids: list[str] | None = None, *, long_side: int | None = None) -> list[Subject]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"subject folder {folder} does not exist")
    infos = manifest_info(folder)
    ids = list_subject_ids(folder) if ids is None else list(ids)
    if not ids:
        raise InputError(f"no subjects (<id>_pha.png) in {folder}")
    return [load_subject(folder, i, long_side=long_side, info=infos.get(i)) for i in ids]


def list_backgrounds(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if is_image_path(p)) if folder.is_dir() else []


def load_background(path: str | Path, *, long_side: int | None = None) -> np.ndarray:
    return resize_long(read_rgb(Path(path)), long_side)
