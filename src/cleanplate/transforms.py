"""torchvision-style image ↔ tensor conversions, so BGMv2 code runs without torchvision.

The BGMv2 tutorials import ``from torchvision.transforms.functional import to_tensor,
to_pil_image``; cleanplate does not depend on torchvision, so ``from cleanplate.transforms import
to_tensor, to_pil_image`` gives the same functions (same values, same rounding):

- :func:`to_tensor`: PIL image or H×W(×C) uint8 array → float C×H×W tensor in [0, 1];
- :func:`to_pil_image`: C×H×W tensor (float in [0, 1] or uint8) or H×W×C array → PIL image
  (float values are multiplied by 255 and truncated, as torchvision does);
- :func:`resize`: a PIL image or a (…, H, W) tensor to ``size`` (an int for the short side, or (h, w)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .errors import InputError

__all__ = ["resize", "to_pil_image", "to_tensor"]

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def to_tensor(pic: Image.Image | np.ndarray) -> torch.Tensor:
    """A PIL image or H×W(×C) array → C×H×W tensor; uint8 data becomes float32 divided by 255.

    Like ``torchvision.transforms.functional.to_tensor``: other dtypes (16/32-bit integer, float)
    keep their type and values, a gray image gives one channel.
    """
    if isinstance(pic, Image.Image):
        if pic.mode == "1":
            arr = np.asarray(pic, dtype=np.uint8) * 255
        elif pic.mode in ("I", "I;16", "I;16B", "I;16L"):
            arr = np.asarray(pic, dtype=np.int32)
        elif pic.mode == "F":
            arr = np.asarray(pic, dtype=np.float32)
        else:
            arr = np.asarray(pic)
    elif isinstance(pic, np.ndarray):
        arr = pic
    else:
        raise InputError(f"to_tensor expects a PIL image or a numpy array; got {type(pic).__name__}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise InputError(f"to_tensor expects an H×W or H×W×C image; got shape {arr.shape}")
    t = torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).contiguous()
    return t.float().div(255) if t.dtype == torch.uint8 else t


def to_pil_image(pic: torch.Tensor | np.ndarray, mode: str | None = None) -> Image.Image:
    """A C×H×W (or H×W) tensor or an H×W×C array → PIL image, like torchvision's ``to_pil_image``.

    Float data is taken as [0, 1]: multiplied by 255 and truncated to uint8. One channel gives an
    ``L`` image, three ``RGB``, four ``RGBA`` (unless ``mode`` says otherwise).
    """
    if isinstance(pic, torch.Tensor):
        t = pic.detach().cpu()
        if t.ndim == 2:
            t = t.unsqueeze(0)
        if t.ndim != 3:
            raise InputError(f"to_pil_image expects a C×H×W or H×W tensor; got shape {tuple(t.shape)}")
        if t.is_floating_point():
            t = t.mul(255).byte()
        arr = t.permute(1, 2, 0).numpy()
    elif isinstance(pic, np.ndarray):
        arr = pic[:, :, None] if pic.ndim == 2 else pic
        if arr.ndim != 3:
            raise InputError(f"to_pil_image expects an H×W×C or H×W array; got shape {pic.shape}")
        if np.issubdtype(arr.dtype, np.floating):
            arr = (arr * 255).astype(np.uint8)
    else:
        raise InputError(f"to_pil_image expects a tensor or a numpy array; got {type(pic).__name__}")
    channels = arr.shape[2]
    if channels not in _MODES:
        raise InputError(f"to_pil_image: {channels} channels is not an image (1 to 4)")
    if channels == 1:
        arr = arr[:, :, 0]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode or _MODES[channels])


def _target(size: int | Sequence[int], h: int, w: int) -> tuple[int, int]:
    if isinstance(size, int):  # the short side becomes ``size``, the aspect is kept
        if h <= w:
            return size, max(1, int(size * w / h))
        return max(1, int(size * h / w)), size
    if len(size) == 1:
        return _target(int(size[0]), h, w)
    return int(size[0]), int(size[1])


def resize(img: Image.Image | torch.Tensor, size: int | Sequence[int]) -> Image.Image | torch.Tensor:
    """Bilinear resize to ``size``: (h, w), or an int for the shorter side (aspect kept).

    A PIL image stays a PIL image; a (…, H, W) tensor is resized with antialiasing.
    """
    if isinstance(img, Image.Image):
        h, w = _target(size, img.height, img.width)
        return img.resize((w, h), Image.Resampling.BILINEAR)
    if isinstance(img, torch.Tensor):
        h, w = _target(size, img.shape[-2], img.shape[-1])
        lead = img.shape[:-2]
        x = img.reshape(-1, 1, *img.shape[-2:])
        dtype = x.dtype
        out = F.interpolate(x.float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        if not dtype.is_floating_point:
            out = out.round().clamp(0, 255).to(dtype)
        return out.reshape(*lead, h, w)
    raise InputError(f"resize expects a PIL image or a tensor; got {type(img).__name__}")
