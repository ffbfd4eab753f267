"""The optimized inference path: the same outputs as MattingBase/MattingRefine (within 1e-4), less work.

Why it is faster than the straightforward (parity-tested) forward pass:

- BatchNorm is folded into the convolution before it (one op instead of two, no extra pass).
- The convolutions run in channels_last memory format (oneDNN's preferred CPU layout).
- The sampling/thresholding refiner never builds full- or half-resolution feature maps. The original
  upsamples the 32-channel hidden map and the coarse outputs to half resolution, concatenates
  full-size tensors, and then keeps only the 8x8 windows around the selected patches. Bilinear
  interpolation (``align_corners=False``) is local, so each window is computed here straight from the
  small S x S block of the coarse map it depends on, with per-patch separable weight matrices built
  from exactly PyTorch's source indices and weights. Only the 4 output channels (alpha and the
  foreground residual) are upsampled to full resolution, and the refined patches are scattered in.
- Sampling mode has static shapes: ``k = min(sample_pixels // 16, h * w)`` patches per image by
  top-k; patches whose error is exactly 0 (``prevent_oversampling``) are computed but not written,
  which gives the original's result (it drops them). So the module exports to ONNX with dynamic
  batch, height and width (see :mod:`cleanplate.export.onnx`).

``optimize(model)`` returns a new module (the given one is left untouched) with the same forward
signature and outputs.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .matting import MattingBase, MattingRefine, _check_pair, split_base_output
from .refiner import Refiner

__all__ = ["FastMattingBase", "FastMattingRefine", "fold_batchnorm", "optimize"]


# ------------------------------------------------------------------------------------- BN folding


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d into the Conv2d before it, in place; returns ``module``.

    Handles the two patterns used by the BGMv2 modules: ``Sequential(conv, bn, ...)`` and sibling
    attributes ``convN``/``bnN``. A folded BatchNorm is replaced by ``nn.Identity`` so forward code
    that still calls it keeps working.
    """
    for child in module.children():
        fold_batchnorm(child)
    children = list(module.named_children())
    pairs = list(zip(children, children[1:], strict=False)) if isinstance(module, nn.Sequential) else []
    for name, child in children:
        if name.startswith("conv") and isinstance(child, nn.Conv2d):
            bn_name = "bn" + name[len("conv") :]
            bn = getattr(module, bn_name, None)
            if isinstance(bn, nn.BatchNorm2d):
                pairs.append(((name, child), (bn_name, bn)))
    for (conv_name, conv), (bn_name, bn) in pairs:
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            setattr(module, conv_name, fuse_conv_bn_eval(conv.eval(), bn.eval()))
            setattr(module, bn_name, nn.Identity())
    return module


# ------------------------------------------------------------------------- bilinear window maths


def bilinear_taps(
    dst: torch.Tensor, out_len: int | torch.SymInt, in_len: int | torch.SymInt
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows and weights of output rows ``dst`` (int64, already inside [0, out_len)).

    Exactly PyTorch's ``upsample_bilinear2d`` rule for ``align_corners=False`` with an explicit
    output size: ``src = max((dst + 0.5) * (in/out) - 0.5, 0)`` in float32, ``i0 = min(floor(src),
    in-1)``, ``i1 = i0 + (i0 < in-1)``, ``l1 = clamp(src - i0, 0, 1)``. Returns ``(i0, i1, l1)``.
    """
    scale = in_len / out_len  # a Python (or symbolic) float; applied in float32 like ATen
    src = ((dst.to(torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().to(torch.int64).clamp(max=in_len - 1)
    lam = (src - i0.to(torch.float32)).clamp(0, 1)
    i1 = torch.where(i0 < in_len - 1, i0 + 1, i0)
    return i0, i1, lam


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


def gather_windows(x_nhwc: torch.Tensor, b: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int):
    """``size`` x ``size`` windows (N, size, size, C) of an NHWC map at (b, top, left), zero outside."""
    batch, height, width, channels = x_nhwc.shape
    ar = torch.arange(size, device=top.device)
    index, valid = _pixel_index(b, top[:, None] + ar, left[:, None] + ar, height, width)
    out = x_nhwc.reshape(batch * height * width, channels).index_select(0, index.reshape(-1))
    out = out.view(index.shape[0], size, size, channels)
    return out * valid[..., None].to(out.dtype)


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


# ------------------------------------------------------------------------------------ the modules


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


class FastRefiner(nn.Module):
    """The refiner with BN folded and window-only patch extraction (see the module docstring)."""

    def __init__(self, refiner: Refiner, channels_last: bool = True) -> None:
        super().__init__()
        self.mode = refiner.mode
        self.sample_pixels = refiner.sample_pixels
        self.threshold = refiner.threshold
        self.kernel_size = refiner.kernel_size
        self.prevent_oversampling = refiner.prevent_oversampling
        self.channels_last = channels_last
        fold_batchnorm(refiner)
        self.conv1, self.conv2, self.conv3, self.conv4 = refiner.conv1, refiner.conv2, refiner.conv3, refiner.conv4

    def _stage1(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))))

    def _stage2(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv4(F.relu(self.conv3(x)))

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    # --- selection
    def select(self, err: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patches to refine from the quarter-resolution error map.

        Returns ``ref`` (B, 1, h, w) 0/1 like the original, and per patch ``b``, ``cell`` (flat index
        into h*w) and ``write`` (bool): whether the patch replaces the upsampled output.
        """
        batch, _, h, w = err.shape
        flat = err.reshape(batch, h * w)
        if self.mode == "sampling":
            k = torch.sym_min(self.sample_pixels // 16, h * w)
            cell = flat.topk(k, dim=1, sorted=False).indices  # (B, k), distinct per image
            picked = torch.gather(flat, 1, cell)
            write = picked > 0 if self.prevent_oversampling else torch.ones_like(picked, dtype=torch.bool)
            ref = torch.zeros_like(flat).scatter(1, cell, write.to(flat.dtype))
            b = torch.arange(batch, device=err.device)[:, None].expand_as(cell)
            return ref.view(batch, 1, h, w), b.reshape(-1), cell.reshape(-1), write.reshape(-1)
        ref = (flat > self.threshold).to(flat.dtype)
        b, cell = torch.nonzero(ref > 0, as_tuple=True)
        return ref.view(batch, 1, h, w), b, cell, torch.ones_like(cell, dtype=torch.bool)

    def forward(
        self,
        src: torch.Tensor,
        bgr: torch.Tensor,
        raw: torch.Tensor,
        backbone_scale: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Full-resolution alpha and foreground residual (unclamped) and the refine map.

        ``raw`` is the base network's 37-channel output at the coarse size.
        """
        pha, res, err, hid = split_base_output(raw)
        if self.mode == "full":
            return self._dense(src, bgr, pha, res, hid)
        batch, _, h, w = src.shape
        qh, qw = h // 4, w // 4
        ch, cw = raw.shape[-2:]
        err_q = err if backbone_scale == 0.25 else F.interpolate(err, (qh, qw), mode="bilinear", align_corners=False)
        ref, b, cell, write = self.select(err_q)
        py, px = cell // qw, cell % qw

        # Full-resolution output: only the 4 output channels are upsampled.
        coarse = torch.cat([pha, res], dim=1).contiguous()
        out = F.interpolate(coarse, (h, w), mode="bilinear", align_corners=False)

        patches = self._refine_patches(src, bgr, pha, res, hid, b, py, px, backbone_scale)
        # Scatter: flat indices of every (channel, row, col) of every 4x4 patch.
        n = b.shape[0]
        ar = torch.arange(4, device=src.device)
        offs = (ar[:, None, None] * h + ar[None, :, None]) * w + ar[None, None, :]  # (4c, 4r, 4c)
        base = b * (4 * h * w) + (py * 4) * w + px * 4
        index = (base[:, None, None, None] + offs).reshape(-1)
        flat = out.view(-1)
        values = patches.reshape(n, 4, 4, 4)
        if self.mode == "sampling" and self.prevent_oversampling:
            values = torch.where(write[:, None, None, None], values, flat[index].view(n, 4, 4, 4))
        flat = flat.index_put((index,), values.reshape(-1))
        out = flat.view(batch, 4, h, w)
        return out[:, :1], out[:, 1:], ref

    def _refine_patches(self, src, bgr, pha, res, hid, b, py, px, backbone_scale: float) -> torch.Tensor:
        h, w = src.shape[-2:]
        three = self.kernel_size == 3
        p1, p2 = (3, 2) if three else (0, 0)
        size1, size2 = 2 + 2 * p1, 4 + 2 * p2
        feat = _nhwc(torch.cat([hid, pha, res], dim=1))  # coarse, 36 channels
        # Half-resolution frame and plate: bilinear 2x downsampling == 2x2 average.
        half = _nhwc(torch.cat([F.avg_pool2d(src, 2), F.avg_pool2d(bgr, 2)], dim=1))
        scale_bound = 2 * backbone_scale  # coarse size / half size <= this
        span = 5 if backbone_scale == 0.25 else window_span(size1, scale_bound)
        top1, left1 = 2 * py - p1, 2 * px - p1
        x = resized_windows(feat, b, top1, left1, size1, (h // 2, w // 2), (span, span))
        y = gather_windows(half, b, top1, left1, size1)
        x = torch.cat([x, y], dim=-1).permute(0, 3, 1, 2)  # (N, 42, s, s), channels_last strides
        x = self._stage1(self._layout(x))
        x = F.interpolate(x, size=(size2, size2), mode="nearest")
        top2, left2 = 4 * py - p2, 4 * px - p2
        full = _full_windows(src, bgr, b, top2, left2, size2)
        x = torch.cat([x, full], dim=1)
        return self._stage2(self._layout(x))

    def _dense(self, src, bgr, pha, res, hid):
        h, w = src.shape[-2:]
        three = self.kernel_size == 3
        half = (h // 2, w // 2)
        x = F.interpolate(torch.cat([hid, pha, res], dim=1), half, mode="bilinear", align_corners=False)
        y = torch.cat([F.avg_pool2d(src, 2), F.avg_pool2d(bgr, 2)], dim=1)
        x = torch.cat([x, y], dim=1)
        if three:
            x = F.pad(x, (3, 3, 3, 3))
        x = self._stage1(self._layout(x))
        grow = 4 if three else 0
        x = F.interpolate(x, (h + grow, w + grow), mode="nearest")
        y = torch.cat([src, bgr], dim=1)
        if three:
            y = F.pad(y, (2, 2, 2, 2))
        x = self._stage2(self._layout(torch.cat([x, y], dim=1)))
        ref = src.new_ones((src.shape[0], 1, h // 4, w // 4))
        return x[:, :1], x[:, 1:], ref


def _full_windows(src, bgr, b, top, left, size) -> torch.Tensor:
    """(N, 6, size, size) windows of cat(src, bgr) at full resolution, zero outside, gathered from NCHW."""
    batch, c, h, w = src.shape
    ar = torch.arange(size, device=top.device)
    pix, valid = _pixel_index(b, top[:, None] + ar, left[:, None] + ar, h, w)  # b*h*w + r*w + c
    # NCHW flat index: (b*C + ch)*h*w + r*w + col  ==  pix + b*(C-1)*h*w + ch*h*w
    pix = pix + (b * ((c - 1) * h * w))[:, None, None]
    chan = torch.arange(c, device=top.device) * (h * w)
    index = (pix[:, None] + chan[None, :, None, None]).reshape(-1)
    n = pix.shape[0]
    m = valid[:, None].to(src.dtype)
    s = src.reshape(-1)[index].view(n, c, size, size) * m
    g = bgr.reshape(-1)[index].view(n, c, size, size) * m
    return torch.cat([s, g], dim=1)


class FastMattingBase(nn.Module):
    """MattingBase with BN folded and channels_last convolutions; same outputs."""

    def __init__(self, model: MattingBase, channels_last: bool = True, fuse: bool = True) -> None:
        super().__init__()
        model = copy.deepcopy(model).eval()
        if fuse:
            fold_batchnorm(model)
        self.channels_last = channels_last
        self.backbone_name = model.backbone_name
        self.backbone, self.aspp, self.decoder = model.backbone, model.aspp, model.decoder
        if channels_last:
            for part in (self.backbone, self.aspp, self.decoder):
                part.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        deep, *skips = self.backbone(x)
        return self.decoder(self.aspp(deep), *skips)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _check_pair(src, bgr)
        raw = self.features(torch.cat([src, bgr], dim=1)).contiguous()
        pha, res, err, hid = split_base_output(raw)
        return pha, (res + src).clamp(0, 1), err, hid


class FastMattingRefine(FastMattingBase):
    """MattingRefine with the optimized refiner; same constructor options, same outputs."""

    def __init__(self, model: MattingRefine, channels_last: bool = True, fuse: bool = True) -> None:
        super().__init__(model, channels_last=channels_last, fuse=fuse)
        self.backbone_scale = model.backbone_scale
        self.refiner = FastRefiner(copy.deepcopy(model.refiner).eval(), channels_last=channels_last)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _check_pair(src, bgr)
        h, w = src.shape[-2:]
        if h % 4 or w % 4:
            from ..errors import InputError

            raise InputError(f"MattingRefine needs height and width divisible by 4; got {h}x{w}")
        scale = self.backbone_scale
        sm = F.interpolate(
            torch.cat([src, bgr], dim=1),
            scale_factor=scale,
            mode="bilinear",
            align_corners=False,
            recompute_scale_factor=True,
        )
        raw = self.features(sm).contiguous()
        pha, res, ref = self.refiner(src, bgr, raw, scale)
        pha_sm, res_sm, err_sm, _ = split_base_output(raw)
        fgr_sm = (sm[:, :3] + res_sm).clamp(0, 1)
        return pha.clamp(0, 1), (res + src).clamp(0, 1), pha_sm, fgr_sm, err_sm, ref


def optimize(model: nn.Module, *, channels_last: bool = True, fuse: bool = True) -> nn.Module:
    """A faster module with the same forward outputs (within 1e-4) as ``model``; ``model`` is not changed.

    MattingRefine → :class:`FastMattingRefine`, MattingBase → :class:`FastMattingBase`; anything
    else (e.g. the classical keyer) is returned as is.
    """
    if isinstance(model, MattingRefine):
        return FastMattingRefine(model, channels_last=channels_last, fuse=fuse).eval()
    if isinstance(model, MattingBase):
        return FastMattingBase(model, channels_last=channels_last, fuse=fuse).eval()
    return model
