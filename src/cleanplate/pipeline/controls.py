"""Matte controls as keyers have them: levels, choke, feather, garbage and holdout masks.

A model's matte is rarely the final one: a compositor clips the faint noise out of the
background (``clip_black``) and the slight transparency out of the body (``clip_white``), pulls
the edge in or out a pixel (``choke``), softens it (``feather``), and paints away what must never
be subject (a light stand: ``garbage``) or must always be (a prop the plate also shows:
``holdout``). Applied in this order, after the model and the temporal smoothing, in torch on the
inference device: one set of pure functions for images, video and live.

Where a control *grows* the matte (a negative choke, a feather outside the edge, a holdout), the
model's foreground colour there means nothing; the grown part shows the frame itself, so the
foreground is blended towards the frame by the share of alpha that was added.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

MAX_CHOKE = 256.0  # pixels either way: more is no edge correction any more
MAX_FEATHER = 256.0


@dataclass(frozen=True)
class MatteControls:
    """The keyer controls (CLI ``--clip-black --clip-white --choke --feather --garbage --holdout``).

    ``choke`` px > 0 erodes the matte (pulls the edge in), < 0 expands it; fractions interpolate.
    ``feather`` px is the Gaussian blur of the matte (sigma = feather / 2, so the edge softens over
    about ±feather). ``clip_black``/``clip_white`` map [black, white] to [0, 1] (levels).
    ``garbage``/``holdout`` are grey mask images (white = the region) resized to the frame:
    garbage is always background, holdout always subject (holdout wins where both are white).
    """

    clip_black: float = 0.0
    clip_white: float = 1.0
    choke: float = 0.0
    feather: float = 0.0
    garbage: Path | None = None
    holdout: Path | None = None

    @property
    def active(self) -> bool:
        return (
            self.clip_black > 0
            or self.clip_white < 1
            or self.choke != 0
            or self.feather > 0
            or self.garbage is not None
            or self.holdout is not None
        )

    def check(self) -> MatteControls:
        """One-line :class:`InputError` for values no keyer accepts; masks must exist and be images."""
        for name in ("clip_black", "clip_white", "choke", "feather"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"--{name.replace('_', '-')} must be a finite number; got {value!r}")
        if not 0.0 <= self.clip_black < self.clip_white <= 1.0:
            raise InputError(
                f"--clip-black and --clip-white must satisfy 0 <= black < white <= 1; "
                f"got {self.clip_black:g} and {self.clip_white:g}"
            )
        if abs(self.choke) > MAX_CHOKE:
            raise InputError(f"--choke must be within ±{MAX_CHOKE:g} px; got {self.choke:g}")
        if not 0.0 <= self.feather <= MAX_FEATHER:
            raise InputError(f"--feather must be in [0, {MAX_FEATHER:g}] px; got {self.feather:g}")
        for name in ("garbage", "holdout"):
            path = getattr(self, name)
            if path is not None:
                _check_mask_file(Path(path), name)
        return self


def _check_mask_file(path: Path, name: str) -> None:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InputError(f"--{name} {path}: no such file")
    try:
        with Image.open(path):
            pass
    except (UnidentifiedImageError, OSError):
        raise InputError(f"--{name} {path}: not an image file") from None


def read_mask(path: str | Path, size: tuple[int, int], name: str = "mask") -> np.ndarray:
    """A grey mask image as float32 (h, w) in [0, 1], resized to ``size``; same aspect as the frame.

    Colour masks are read as luminance; an RGBA mask with real transparency uses its alpha.
    16-bit masks keep their precision.
    """
    from ..compose import resize
    from ..io.image import open_image
    from ..plate.fit import aspect_matches

    img = open_image(path)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = np.asarray(img.convert("RGBA"))
        mask = rgba[..., 3].astype(np.float32) / 255 if rgba[..., 3].min() < 255 else None
    else:
        mask = None
    if mask is None:
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(img, np.float32)
            mask = arr / (65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0)
        elif img.mode == "F":
            mask = np.asarray(img, np.float32)
        else:
            mask = np.asarray(img.convert("L"), np.float32) / 255
    mask = np.clip(mask, 0, 1).astype(np.float32)
    if not aspect_matches(mask.shape[:2], size):
        raise InputError(
            f"--{name} {path} is {mask.shape[1]}x{mask.shape[0]} but the frame is {size[1]}x{size[0]} "
            "(another aspect ratio); draw the mask at the frame's framing"
        )
    return np.ascontiguousarray(resize(mask, size))


# -------------------------------------------------------------------------------- pure functions


def levels(alpha: torch.Tensor, black: float = 0.0, white: float = 1.0) -> torch.Tensor:
    """Map [black, white] to [0, 1], clamped (the keyer's clip black / clip white)."""
    if black <= 0.0 and white >= 1.0:
        return alpha
    return ((alpha - black) / (white - black)).clamp_(0, 1)


def _erode_once(alpha: torch.Tensor, step: int) -> torch.Tensor:
    """One pixel of grey erosion: alternating 3×3 square and 3×3 cross, so repeated steps grow an octagon
    (close to a disk, unlike a square pool)."""
    if step % 2 == 0:
        return -F.max_pool2d(F.pad(-alpha, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    padded = F.pad(-alpha, (1, 1, 1, 1), mode="replicate")
    horizontal = F.max_pool2d(padded[..., 1:-1, :], (1, 3), stride=1)
    vertical = F.max_pool2d(padded[..., :, 1:-1], (3, 1), stride=1)
    return -torch.maximum(horizontal, vertical)


def choke(alpha: torch.Tensor, pixels: float) -> torch.Tensor:
    """Erode (``pixels`` > 0) or expand (< 0) a (B, 1, H, W) matte by a near-disk of that radius.

    Fractional radii interpolate between the two nearest whole ones, so the control is continuous.
    """
    if pixels == 0:
        return alpha
    sign = 1.0 if pixels > 0 else -1.0
    radius = abs(float(pixels))
    whole = int(math.floor(radius))
    frac = radius - whole
    x = alpha if sign > 0 else 1 - alpha  # dilation is the erosion of the inverse
    for i in range(whole):
        x = _erode_once(x, i)
    if frac > 1e-6:
        x = torch.lerp(x, _erode_once(x, whole), frac)
    return x if sign > 0 else 1 - x


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with reflected borders (kernel radius 3 sigma)."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    radius = min(radius, max(1, min(x.shape[-2:]) - 1))  # reflect padding needs radius < size
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def feather(alpha: torch.Tensor, pixels: float) -> torch.Tensor:
    """Soften the matte edge: Gaussian blur with sigma = ``pixels`` / 2 (flat regions stay as they are)."""
    return gaussian_blur(alpha, pixels / 2).clamp_(0, 1) if pixels > 0 else alpha


def apply_masks(
    alpha: torch.Tensor, garbage: torch.Tensor | None = None, holdout: torch.Tensor | None = None
) -> torch.Tensor:
    """Garbage (1 = always background) then holdout (1 = always subject); soft masks blend."""
    if garbage is not None:
        alpha = alpha * (1 - garbage)
    if holdout is not None:
        alpha = torch.lerp(alpha, torch.ones_like(alpha), holdout)
    return alpha


def grow_foreground(fgr: torch.Tensor, src: torch.Tensor, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Foreground where the matte grew from ``before`` to ``after``: the added share shows the frame.

    ``fgr·after = fgr·before + src·(after − before)`` wherever alpha was added, so a composite
    shows the frame itself in a holdout or an expanded edge, never the model's guess there.
    """
    added = (after - before).clamp(min=0)
    share = torch.where(after > 1e-6, added / after.clamp(min=1e-6), torch.zeros_like(after))
    return torch.lerp(fgr, src, share.clamp_(0, 1))


class Controls:
    """:class:`MatteControls` ready for frames of one size on one device (masks loaded once)."""

    def __init__(self, options: MatteControls, size: tuple[int, int], device: torch.device | str = "cpu") -> None:
        self.options = options.check()
        self.size = (int(size[0]), int(size[1]))
        device = torch.device(device)

        def load(path: Path | None, name: str) -> torch.Tensor | None:
            if path is None:
                return None
            return torch.from_numpy(read_mask(path, self.size, name))[None, None].to(device)

        self.garbage = load(options.garbage, "garbage")
        self.holdout = load(options.holdout, "holdout")

    def __call__(self, alpha: torch.Tensor, fgr: torch.Tensor, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The controlled (alpha, fgr) for a batch: alpha (B, 1, H, W), fgr and src (B, 3, H, W)."""
        o = self.options
        before = alpha
        alpha = levels(alpha, o.clip_black, o.clip_white)
        alpha = choke(alpha, o.choke)
        alpha = feather(alpha, o.feather)
        alpha = apply_masks(alpha, self.garbage, self.holdout)
        alpha = alpha.clamp(0, 1)
        return alpha, grow_foreground(fgr, src, before, alpha)


def control_matte(
    alpha: np.ndarray, foreground: np.ndarray, frame: np.ndarray, options: MatteControls
) -> tuple[np.ndarray, np.ndarray]:
    """The same controls on one still (numpy): alpha H×W, foreground H×W×3 float, frame uint8 H×W×3."""
    controls = Controls(options, alpha.shape[:2])
    a = torch.from_numpy(np.ascontiguousarray(alpha, np.float32))[None, None]
    f = torch.from_numpy(np.ascontiguousarray(foreground, np.float32)).permute(2, 0, 1)[None]
    s = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        a2, f2 = controls(a, f, s)
    return a2[0, 0].numpy().copy(), f2[0].permute(1, 2, 0).numpy().copy()
