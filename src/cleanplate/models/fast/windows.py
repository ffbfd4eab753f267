"""Resampling, exactly as ATen does it, but only where it is read: taps, windows, 2x/4x means.

The refiner reads small windows of bilinearly resized maps; these helpers compute those windows
from the few source rows they touch (the same indices and weights as ``F.interpolate``), never the
whole resized map. ``resize_exact`` is the whole-map form, for exported graphs.
"""

from __future__ import annotations

import math

import torch


def bilinear_taps(
    dst: torch.Tensor, out_len: int | torch.SymInt, in_len: int | torch.SymInt
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows and weights of output rows ``dst`` (int64, already inside [0, out_len)).

    Exactly PyTorch's ``upsample_bilinear2d`` rule for ``align_corners=False`` with an explicit
    output size: ``src = max((dst + 0.5) * (in/out) - 0.5, 0)`` in float32, ``i0 = min(floor(src),
    in-1)``, ``i1 = i0 + (i0 < in-1)``, ``l1 = clamp(src - i0, 0, 1)``. Returns ``(i0, i1, l1)``.
    """
    scale = _ratio(in_len, out_len)
    src = ((dst.to(torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().to(torch.int64).clamp(max=in_len - 1)
    lam = (src - i0.to(torch.float32)).clamp(0, 1)
    i1 = torch.where(i0 < in_len - 1, i0 + 1, i0)
    return i0, i1, lam


def _ratio(num, den):
    """num / den rounded to float32 like ATen's ``area_pixel_compute_scale`` (tensors stay tensors)."""
    if isinstance(num, torch.Tensor) or isinstance(den, torch.Tensor):
        return torch.as_tensor(num).to(torch.float32) / torch.as_tensor(den).to(torch.float32)
    if isinstance(num, int) and isinstance(den, int):
        return float(torch.tensor(num, dtype=torch.float32) / den)
    return num / den  # symbolic sizes (torch.export)


def resize_exact(x: torch.Tensor, size: tuple) -> torch.Tensor:
    """``F.interpolate(x, size, mode='bilinear', align_corners=False)`` as two gathers and blends.

    Same source indices and weights as ATen (see :func:`bilinear_taps`). Used in exported graphs
    where ONNX Resize would derive its coordinates from ``out/in`` instead of ``in/out`` (a float32
    rounding difference that the network amplifies past 1e-4 for ratios that are not powers of 2).
    """
    out_h, out_w = size
    in_h, in_w = x.shape[-2:]
    i0, i1, ly = bilinear_taps(torch.arange(out_h, device=x.device), out_h, in_h)
    j0, j1, lx = bilinear_taps(torch.arange(out_w, device=x.device), out_w, in_w)
    ly = ly.to(x.dtype)[:, None]
    lx = lx.to(x.dtype)
    rows = x.index_select(2, i0) * (1 - ly) + x.index_select(2, i1) * ly
    return rows.index_select(3, j0) * (1 - lx) + rows.index_select(3, j1) * lx


def window_weights(
    start: torch.Tensor, length: int, out_len: int | torch.SymInt, in_len: int | torch.SymInt, span: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights mapping ``span`` source rows to ``length`` rows of the bilinearly resized map.

    ``start`` (N,) is the first output row of each window (may be negative or run past the end: those
    rows are zero, like zero padding after resizing). Returns ``first`` (N,), the first source row
    of each window, and ``weights`` (N, length, span) so that ``window = weights @ source[first :
    first + span]``. Source rows past the end are clamped by the caller; they get zero weight.
    """
    rows = start[:, None] + torch.arange(length, device=start.device)
    valid = (rows >= 0) & (rows < out_len)
    i0, i1, lam = bilinear_taps(rows.clamp(0, out_len - 1), out_len, in_len)
    first = i0[:, 0]
    pos = torch.arange(span, device=start.device)
    o0 = (i0 - first[:, None])[..., None] == pos
    o1 = (i1 - first[:, None])[..., None] == pos
    lam = lam[..., None]
    weights = torch.where(o0, 1 - lam, 0.0) + torch.where(o1, lam, 0.0)
    return first, weights * valid[..., None].to(weights.dtype)


def window_span(length: int, scale_bound: float) -> int:
    """Source rows a ``length``-row window of the resized map can touch when in/out <= ``scale_bound``.

    floor(b) - floor(a) <= ceil(b - a) for the first/last source coordinates, plus the second tap.
    """
    return math.ceil((length - 1) * scale_bound) + 2


def _pixel_index(
    b: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, height: int | torch.SymInt, width: int | torch.SymInt
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (b, row, col) pixel indices (N, R, C) into a (B*H*W) grid, clamped, plus an in-image mask."""
    valid = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    r = rows.clamp(0, height - 1)
    c = cols.clamp(0, width - 1)
    index = (b[:, None, None] * height + r[:, :, None]) * width + c[:, None, :]
    return index, valid


def gather_windows(
    x_nhwc: torch.Tensor, b: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int, masked: bool = True
) -> torch.Tensor:
    """``size`` x ``size`` windows (N, size, size, C) of an NHWC map at (b, top, left), zero outside
    (``masked=False``: clamped to the border instead; the caller masks)."""
    batch, height, width, channels = x_nhwc.shape
    ar = torch.arange(size, device=top.device)
    index, valid = _pixel_index(b, top[:, None] + ar, left[:, None] + ar, height, width)
    out = x_nhwc.reshape(batch * height * width, channels).index_select(0, index.reshape(-1))
    out = out.view(index.shape[0], size, size, channels)
    return out * valid[..., None].to(out.dtype) if masked else out


def resized_windows(
    x_nhwc: torch.Tensor,
    b: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    size: int,
    out_hw: tuple,
    span: tuple[int, int],
) -> torch.Tensor:
    """Windows (N, size, size, C) of ``F.interpolate(x, out_hw, 'bilinear')`` zero-padded outside.

    Computed from the (span x span) source block of each window only, never the whole resized map.
    """
    batch, in_h, in_w, channels = x_nhwc.shape
    out_h, out_w = out_hw
    first_r, wy = window_weights(top, size, out_h, in_h, span[0])
    first_c, wx = window_weights(left, size, out_w, in_w, span[1])
    ry = (first_r[:, None] + torch.arange(span[0], device=top.device)).clamp(max=in_h - 1)
    rx = (first_c[:, None] + torch.arange(span[1], device=top.device)).clamp(max=in_w - 1)
    index = (b[:, None, None] * in_h + ry[:, :, None]) * in_w + rx[:, None, :]
    n = index.shape[0]
    block = x_nhwc.reshape(batch * in_h * in_w, channels).index_select(0, index.reshape(-1))
    block = block.view(n, span[0], span[1] * channels)
    rows = torch.matmul(wy.to(block.dtype), block).view(n, size, span[1], channels)  # (N, size, span, C)
    return torch.matmul(wx.to(block.dtype)[:, None], rows)  # (N, size, size, C)


def quarter_resolution(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 4x downsampling (align_corners=False, no antialias) of a map with sides divisible by 4.

    Output pixel i samples source coordinate 4i + 1.5: the mean of the 2x2 pixels at the centre of
    each 4x4 block (ATen's weights are all 1/2; equal to ``F.interpolate`` within 1 ulp).
    """
    rows = x[..., 1::4, :] + x[..., 2::4, :]
    return (rows[..., 1::4] + rows[..., 2::4]) * 0.25


def half_resolution(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x downsampling (align_corners=False) of an even-sized map: the mean of each 2x2 block.

    Equal to ``F.interpolate(x, (h/2, w/2), mode='bilinear')`` within 1 ulp (all weights are 1/2) and
    cheaper than both it and ``avg_pool2d``.
    """
    rows = x[..., 0::2, :] + x[..., 1::2, :]
    return (rows[..., 0::2] + rows[..., 1::2]) * 0.25


def image_windows(src, bgr, b, top, left, size) -> torch.Tensor:
    """(N, size, size, 6) windows of cat(src, bgr) at full resolution, zero outside, gathered from NCHW."""
    batch, c, h, w = src.shape
    ar = torch.arange(size, device=top.device)
    pix, valid = _pixel_index(b, top[:, None] + ar, left[:, None] + ar, h, w)  # b*h*w + r*w + col
    pix = pix + (b * ((c - 1) * h * w))[:, None, None]  # NCHW: (b*C + ch)*h*w + r*w + col
    index = (pix[..., None] + torch.arange(c, device=top.device) * (h * w)).reshape(-1)
    m = valid[..., None].to(src.dtype)
    n = pix.shape[0]
    s = src.reshape(-1).index_select(0, index).view(n, size, size, c)
    g = bgr.reshape(-1).index_select(0, index).view(n, size, size, c)
    return torch.cat([s, g], dim=-1) * m
