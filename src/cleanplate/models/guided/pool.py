"""Small-window pooling written as shifted slices: the guided model's hot loops at 1080p.

PyTorch's CPU ``max_pool2d`` and ``avg_pool2d`` are slow on the one- to four-channel maps this
model pools (measured at 270×480 on 2 cores: 3×3 max 6 ms against 0.2 ms here, a 3×3 box over four
channels 9.6 ms against 1.4 ms); separable sums and maxima of shifted views give the same values,
export to ONNX and keep their gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def max3(x: torch.Tensor) -> torch.Tensor:
    """3×3 maximum, stride 1, same size: ``max_pool2d(x, 3, 1, 1)`` (replicated border = ignored border)."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    rows = torch.maximum(torch.maximum(p[..., :-2, :], p[..., 1:-1, :]), p[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def separable(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """The same odd-length filter along rows and columns, stride 1, same size, replicated border.
    Slices by constants only (no shape arithmetic), so an ONNX export keeps any input size."""
    n = len(taps)
    r = n // 2
    p = F.pad(x, (r, r, r, r), mode="replicate")
    cut = [slice(i, i - n + 1 or None) for i in range(n)]  # the n windows of the padded side
    rows = p[..., cut[0], :] * taps[0]
    for c, t in zip(cut[1:], taps[1:], strict=True):
        rows = rows + p[..., c, :] * t
    out = rows[..., cut[0]] * taps[0]
    for c, t in zip(cut[1:], taps[1:], strict=True):
        out = out + rows[..., c] * t
    return out


def box(x: torch.Tensor, r: int) -> torch.Tensor:
    """(2r+1)² mean, stride 1, same size, replicated border."""
    return separable(x, [1.0 / (2 * r + 1)] * (2 * r + 1))


def downsample(x: torch.Tensor, step: int) -> torch.Tensor:
    """``avg_pool2d(x, step)`` (floor: a partial last row or column is dropped); a power of two by
    halving, rows then columns (4x faster on CPU at 1080p)."""
    while step > 1 and step % 2 == 0:
        h, w = x.shape[-2] // 2, x.shape[-1] // 2
        rows = x[..., : 2 * h, :].unflatten(-2, (h, 2))  # (..., h, 2, W): pairs of rows, no copy
        x = rows[..., 0, :] + rows[..., 1, :]
        x = (x[..., 0 : 2 * w : 2] + x[..., 1 : 2 * w : 2]).mul_(0.25)
        step //= 2
    return F.avg_pool2d(x, step) if step > 1 else x
