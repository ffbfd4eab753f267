"""Pad tensors to the size the network needs and crop the outputs back.

MattingRefine needs H and W divisible by 4 (quarter-resolution patch grid). Replicate padding
keeps the border statistics of frame and plate alike, so the padded strip is background-like.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def padded_size(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def pad_to_multiple(x: torch.Tensor, multiple: int = 4) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad the bottom and right of (B, C, H, W) ``x``; return it and the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``size`` = (H, W)."""
    return x[..., : size[0], : size[1]]
