"""The optimized inference path: the same outputs as MattingBase/MattingRefine (within 1e-4), less work.

Why it is faster than the straightforward (parity-tested) forward pass, on CPU:

- BatchNorm is folded into the convolution before it; convolutions run in channels_last.
- Frame and plate are downsampled by strided means (exact for bilinear 2x/4x), separately.
- The decoder's last stage (2x upsampling, concatenation, conv4) is a *polyphase* convolution:
  upsampling by exactly 2 is a fixed stencil, so conv4 over the upsampled map equals four phase
  kernels applied to the half-size map, interleaved by ``pixel_shuffle`` (borders recomputed).
- Its 32 hidden channels are computed only where the refiner reads them: conv4's alpha, foreground
  and error channels everywhere, the cells selected from the error, then the hidden channels in
  the 5x5 coarse blocks around those cells (a few percent of the frame at HD).
- The sampling/thresholding refiner never builds full- or half-resolution feature maps (the
  original upsamples 36 channels to half resolution and concatenates full-size tensors, then
  keeps 8x8 windows around the selected patches). Bilinear resizing is local: at backbone scale
  1/4 the upsampling is folded into the refiner's first convolution (polyphase again, on the 5x5
  coarse block), border patches and other scales get their windows from exact per-window
  interpolation weights. The nearest 2x upsampling before conv3 is a 2x2 phase convolution too.
  Only alpha and the foreground residual (4 channels) are upsampled to full resolution.
- Sampling mode has static shapes when exported (``export_mode``): ``k = min(sample_pixels // 16,
  h * w)`` patches per image by top-k; zero-error patches are computed but not written (the
  original drops them: same result). Eagerly, zero-error patches are skipped.

Every rewrite is exact up to float rounding (max abs diff <= 2.6e-5 on the reference fixtures).
``optimize(model)`` returns a new module (the given one is left untouched, except that
``backbone_scale`` is shared) with the same forward signature and outputs.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import InputError
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


# ------------------------------------------------------------------------------------ the modules


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(module: nn.Module, x: torch.Tensor):
    """Reduced-precision convolutions when the module's ``precision`` asks for them (else a no-op)."""
    dtype = PRECISIONS[getattr(module, "precision", "fp32")]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=x.device.type, dtype=dtype)


@contextlib.contextmanager
def _inductor_freezing():
    """Inductor's freezing pass (weights as constants: conv+BN/ReLU fusion, prepacked weights) for this call."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=True):
        yield


def _min_size(a: int, b):
    """min(a, b) for a size that may be an int, a symbolic int (torch.export) or a 0-d tensor (tracing)."""
    if isinstance(b, torch.Tensor):
        return torch.clamp(b, max=a)
    return torch.sym_min(a, b)


def scaled_size(n, scale: float):
    """floor(n * scale) in float64 like ``F.interpolate(..., recompute_scale_factor=True)`` (eager)."""
    if isinstance(n, torch.Tensor):  # legacy ONNX tracing: sizes are 0-d tensors
        return torch.floor(n.to(torch.float64) * scale).to(torch.int64)
    return math.floor(n * scale)


def activate(raw: torch.Tensor, inplace: bool) -> torch.Tensor:
    """The base outputs in their final form: [alpha clamped, fgr residual, error clamped, hidden ReLU'd]."""
    if inplace:
        raw[:, 0:1].clamp_(0, 1)
        raw[:, 4:5].clamp_(0, 1)
        raw[:, 5:].relu_()
        return raw
    pha, res, err, hid = split_base_output(raw)
    return torch.cat([pha, res, err, hid], dim=1)


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


class FastRefiner(nn.Module):
    """The refiner with BN folded and window-only patch extraction (see the module docstring).

    The first convolution takes the base network's 37 output channels in their own order
    ([alpha, foreground residual, error, hidden], the error with zero weight) plus frame and plate,
    so no feature map is reordered or concatenated at coarse resolution.
    """

    def __init__(self, refiner: Refiner, channels_last: bool = True, fuse: bool = True) -> None:
        super().__init__()
        self.mode = refiner.mode
        self.sample_pixels = refiner.sample_pixels
        self.threshold = refiner.threshold
        self.kernel_size = refiner.kernel_size
        self.prevent_oversampling = refiner.prevent_oversampling
        self.channels_last = channels_last
        self.export_mode = False
        self.precision = "fp32"
        if fuse:
            fold_batchnorm(refiner)
        self.conv1 = _reorder_input(refiner.conv1)
        self.bn1, self.conv2, self.bn2 = refiner.bn1, refiner.conv2, refiner.bn2
        self.conv3, self.bn3, self.conv4 = refiner.conv3, refiner.bn3, refiner.conv4
        self.conv1_phase, self.conv1_image = _polyphase_conv1(self.conv1) if self.kernel_size == 3 else (None, None)
        self.conv3_phase, self.conv3_image = _nearest_phase_conv3(self.conv3) if self.kernel_size == 3 else (None, None)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def _stage1(self, x: torch.Tensor) -> torch.Tensor:
        with _autocast(self, x):
            y = F.relu(self.bn1(self.conv1(self._layout(x))))
            y = F.relu(self.bn2(self.conv2(y)))
        return y.to(x.dtype)

    def _stage2(self, x: torch.Tensor) -> torch.Tensor:
        with _autocast(self, x):
            y = self.conv4(F.relu(self.bn3(self.conv3(self._layout(x)))))
        return y.to(x.dtype)

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def select(self, err: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Patches to refine from the quarter-resolution error map.

        Returns ``ref`` (B, 1, h, w) 0/1 like the original, and per patch ``b``, ``cell`` (flat index
        into h*w) and ``write`` (bool): whether the patch replaces the upsampled output.
        """
        batch, _, h, w = err.shape
        flat = err.reshape(batch, h * w)
        if self.mode == "sampling":
            k = _min_size(self.sample_pixels // 16, h * w)
            picked, cell = flat.topk(k, dim=1, sorted=False)  # (B, k), distinct cells per image
            write = picked > 0 if self.prevent_oversampling else torch.ones_like(picked, dtype=torch.bool)
            ref = torch.zeros_like(flat).scatter(1, cell, write.to(flat.dtype))
            b = torch.arange(batch, device=err.device)[:, None].expand_as(cell)
            return ref.view(batch, 1, h, w), b.reshape(-1), cell.reshape(-1), write.reshape(-1)
        ref = (flat > self.threshold).to(flat.dtype)
        b, cell = torch.nonzero(ref > 0, as_tuple=True)
        return ref.view(batch, 1, h, w), b, cell, torch.ones_like(cell, dtype=torch.bool)

    def cells(self, raw: torch.Tensor, backbone_scale: float, size: tuple) -> tuple[torch.Tensor, ...]:
        """``(ref, b, py, px, write)``: the refine map and the patches (image, row, column) to refine."""
        qh, qw = size[0] // 4, size[1] // 4
        err = raw[:, 4:5]
        if backbone_scale != 0.25:  # at 1/4 the coarse map is the quarter-resolution grid already
            exact = self.export_mode and backbone_scale != 0.5
            err = (
                resize_exact(err, (qh, qw))
                if exact
                else F.interpolate(err, (qh, qw), mode="bilinear", align_corners=False)
            )
        ref, b, cell, write = self.select(err)
        if not self.export_mode and self.mode == "sampling" and self.prevent_oversampling:
            keep = torch.nonzero(write).squeeze(1)  # eager: skip zero-error patches, as the original does
            if keep.numel() < write.numel():
                b, cell, write = b.index_select(0, keep), cell.index_select(0, keep), write.index_select(0, keep)
        py = cell // qw
        return ref, b, py, cell - py * qw, write

    def forward(
        self,
        src: torch.Tensor,
        bgr: torch.Tensor,
        raw: torch.Tensor,
        backbone_scale: float,
        cells: tuple[torch.Tensor, ...] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Full-resolution alpha and foreground residual (unclamped) and the refine map.

        ``raw`` is the activated base output (:func:`activate`) at the coarse size; ``cells`` as
        returned by :meth:`cells` when the caller selected them already.
        """
        if self.mode == "full":
            return self._dense(src, bgr, raw)
        batch, _, h, w = src.shape
        exact = self.export_mode and backbone_scale not in (0.25, 0.5)
        ref, b, py, px, write = cells if cells is not None else self.cells(raw, backbone_scale, (h, w))

        # Full-resolution output: only the 4 output channels are upsampled, the patches written in.
        coarse = raw[:, :4].contiguous()
        out = (
            resize_exact(coarse, (h, w))
            if exact
            else F.interpolate(coarse, (h, w), mode="bilinear", align_corners=False)
        )
        patches = self._refine_patches(src, bgr, raw, b, py, px, backbone_scale)  # (N, 4, 4, 4) c, y, x
        n = b.shape[0]
        ar = torch.arange(4, device=src.device)
        offs = (ar[:, None, None] * h + ar[None, :, None]) * w + ar[None, None, :]
        base = b * (4 * h * w) + (py * 4) * w + px * 4
        index = (base[:, None, None, None] + offs).reshape(-1)
        flat = out.reshape(-1)
        if self.export_mode and self.mode == "sampling" and self.prevent_oversampling:
            # Zero-error patches are computed (static shapes) but keep the upsampled values.
            keep = flat.index_select(0, index).view(n, 4, 4, 4)
            patches = torch.where(write[:, None, None, None], patches, keep)
        if self.export_mode:
            out = flat.index_put((index,), patches.reshape(-1)).view(batch, 4, h, w)
        else:
            flat.index_put_((index,), patches.reshape(-1))
        return out[:, :1], out[:, 1:], ref

    def _refine_patches(self, src, bgr, raw, b, py, px, backbone_scale: float) -> torch.Tensor:
        h, w = src.shape[-2:]
        three = self.kernel_size == 3
        p1, p2 = (3, 2) if three else (0, 0)
        size1, size2 = 2 + 2 * p1, 4 + 2 * p2
        top1, left1 = 2 * py - p1, 2 * px - p1
        raw_nhwc = raw.permute(0, 2, 3, 1)  # a view when raw is channels_last
        half = torch.cat([half_resolution(src).permute(0, 2, 3, 1), half_resolution(bgr).permute(0, 2, 3, 1)], -1)
        if backbone_scale == 0.25 and three and not self.export_mode:
            x = self._stage1_x2_eager(raw_nhwc, half, b, py, px)
        elif backbone_scale == 0.25 and three:
            x = self._stage1(self._stage1_input_x2(raw_nhwc, half, b, py, px).permute(0, 3, 1, 2))
        else:
            span = window_span(size1, 2 * backbone_scale)  # coarse size / half size <= 2 * scale
            x = resized_windows(raw_nhwc, b, top1, left1, size1, (h // 2, w // 2), (span, span))
            x = torch.cat([x, gather_windows(half, b, top1, left1, size1)], dim=-1)
            x = self._stage1(x.permute(0, 3, 1, 2))  # (N, 16, s, s)
        n, c, s, _ = x.shape
        y = _image_windows(src, bgr, b, 4 * py - p2, 4 * px - p2, size2)  # (N, 2s, 2s, 6)
        if three:
            return self._stage2_phase(x, y).contiguous()  # (N, 4, 4, 4)
        # Nearest 2x upsampling as a broadcast view, concatenated with the full-resolution windows in one copy.
        x = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, s, 2, s, 2, c)
        x = torch.cat([x, y.view(n, s, 2, s, 2, y.shape[-1])], dim=-1).view(n, 2 * s, 2 * s, c + y.shape[-1])
        return self._stage2(x.permute(0, 3, 1, 2)).contiguous()

    def _stage2_phase(self, x: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        """conv3 over cat(nearest2x(x), img) as a 2x2 phase convolution of ``x`` plus a conv of ``img``.

        Nearest upsampling repeats each row twice, so row 2p + phase of the valid 3x3 convolution
        reads source rows p, p+1 with the summed taps (:func:`_nearest_phase_weights`); no 8x8 map
        of the 16 stage-1 channels and no concatenation is built. Exact for every patch.
        """
        with _autocast(self, img):
            y = F.pixel_shuffle(self.conv3_phase(self._layout(x)), 2)  # (N, 12, 6, 6)
            y = y.add_(self.conv3_image(self._layout(img.permute(0, 3, 1, 2))))
            y = self.conv4(F.relu(self.bn3(y), inplace=True))
        return y.to(img.dtype)

    def _stage1_x2_eager(self, raw_nhwc, half, b, py, px) -> torch.Tensor:
        """Stage 1 at scale 1/4: interior patches by the polyphase convolution, border ones explicitly.

        Interior patches (the 5x5 coarse block and the 8x8 window inside the image) need no
        clamping or zero padding, so bilinear 2x upsampling followed by conv1 is one convolution
        per output phase over the coarse block (:func:`_polyphase_conv1`); no 8x8 window of the
        37 coarse channels is ever built. The rest go through :meth:`_stage1_input_x2`.
        """
        ch, cw = raw_nhwc.shape[1:3]
        n = b.shape[0]
        inner = (py >= 2) & (py <= ch - 3) & (px >= 2) & (px <= cw - 3)
        out = None
        for part, use_phase in ((torch.nonzero(inner).squeeze(1), True), (torch.nonzero(~inner).squeeze(1), False)):
            if part.numel() == 0:
                continue
            pb, pyy, pxx = b.index_select(0, part), py.index_select(0, part), px.index_select(0, part)
            if use_phase:
                y = self._stage1_phase(raw_nhwc, half, pb, pyy, pxx)
            else:
                y = self._stage1(self._stage1_input_x2(raw_nhwc, half, pb, pyy, pxx).permute(0, 3, 1, 2))
            if out is None:
                out = y.new_empty((n, *y.shape[1:])).contiguous(memory_format=torch.channels_last)
            out.index_copy_(0, part, y)
        if out is None:  # no patches at all
            return self._stage1(self._stage1_input_x2(raw_nhwc, half, b, py, px).permute(0, 3, 1, 2))
        return out

    def _stage1_phase(self, raw_nhwc, half, b, py, px) -> torch.Tensor:
        batch, ch, cw, c = raw_nhwc.shape
        ar5 = torch.arange(5, device=py.device) - 2
        index = (b[:, None, None] * ch + (py[:, None] + ar5)[:, :, None]) * cw + (px[:, None] + ar5)[:, None, :]
        n = index.shape[0]
        block = raw_nhwc.reshape(batch * ch * cw, c).index_select(0, index.reshape(-1)).view(n, 5, 5, c)
        img = gather_windows(half, b, 2 * py - 3, 2 * px - 3, 8, masked=False).permute(0, 3, 1, 2)
        with _autocast(self, block):
            x = F.pixel_shuffle(self.conv1_phase(self._layout(block.permute(0, 3, 1, 2))), 2)  # (n, 24, 6, 6)
            x = F.relu(self.bn1(x.add_(self.conv1_image(self._layout(img)))), inplace=True)
            x = F.relu(self.bn2(self.conv2(self._layout(x))))
        return x.to(block.dtype)

    def _stage1_input_x2(self, raw_nhwc, half, b, py, px) -> torch.Tensor:
        """Stage-1 input (N, 8, 8, 37 + 6) when the coarse map is exactly half of the half-resolution map.

        Then bilinear upsampling is the fixed stencil (3/4, 1/4) / (1/4, 3/4) between neighbouring
        coarse rows, and the 8x8 half-resolution window of cell (y, x) needs coarse rows y-2..y+2
        (clamped at the border exactly like ATen clamps its source index), the same for columns.
        """
        batch, ch, cw, c = raw_nhwc.shape
        hh, hw = 2 * ch, 2 * cw
        ar5 = torch.arange(5, device=py.device) - 2
        rows, cols = (py[:, None] + ar5).clamp(0, ch - 1), (px[:, None] + ar5).clamp(0, cw - 1)
        index = (b[:, None, None] * ch + rows[:, :, None]) * cw + cols[:, None, :]
        n = index.shape[0]
        block = raw_nhwc.reshape(batch * ch * cw, c).index_select(0, index.reshape(-1)).view(n, 5, 5, c)
        ar8 = torch.arange(8, device=py.device)
        top, left = 2 * py - 3, 2 * px - 3
        row_ok = (top[:, None] + ar8 >= 0) & (top[:, None] + ar8 < hh)
        col_ok = (left[:, None] + ar8 >= 0) & (left[:, None] + ar8 < hw)
        mask = (row_ok[:, :, None] & col_ok[:, None, :]).to(raw_nhwc.dtype)[..., None]  # (N, 8, 8, 1)
        img = gather_windows(half, b, top, left, 8, masked=False)
        lo, hi = block[:, :4], block[:, 1:]
        if self.export_mode:  # functional form for tracing
            r = torch.stack([torch.lerp(lo, hi, 0.25), torch.lerp(lo, hi, 0.75)], dim=2).view(n, 8, 5, c)
            lo, hi = r[:, :, :4], r[:, :, 1:]
            x = torch.stack([torch.lerp(lo, hi, 0.25), torch.lerp(lo, hi, 0.75)], dim=3).view(n, 8, 8, c)
            return torch.cat([x, img], dim=-1) * mask
        # Eager: write straight into the stage-1 input buffer, no concatenation.
        r = torch.empty(n, 4, 2, 5, c, dtype=block.dtype, device=block.device)
        torch.lerp(lo, hi, 0.25, out=r[:, :, 0])
        torch.lerp(lo, hi, 0.75, out=r[:, :, 1])
        r = r.view(n, 8, 5, c)
        lo, hi = r[:, :, :4], r[:, :, 1:]
        buf = torch.empty(n, 8, 8, c + img.shape[-1], dtype=block.dtype, device=block.device)
        x = buf[..., :c].view(n, 8, 4, 2, c)
        torch.lerp(lo, hi, 0.25, out=x[:, :, :, 0])
        torch.lerp(lo, hi, 0.75, out=x[:, :, :, 1])
        buf[..., c:] = img
        border = torch.nonzero(~(row_ok.all(1) & col_ok.all(1))).squeeze(1)  # only these touch the padding
        buf.index_copy_(0, border, buf.index_select(0, border) * mask.index_select(0, border))
        return buf

    def _dense(self, src, bgr, raw):
        h, w = src.shape[-2:]
        three = self.kernel_size == 3
        x = F.interpolate(raw, (h // 2, w // 2), mode="bilinear", align_corners=False)
        x = torch.cat([x, half_resolution(src), half_resolution(bgr)], dim=1)
        if three:
            x = F.pad(x, (3, 3, 3, 3))
        x = self._stage1(x)
        grow = 4 if three else 0
        x = F.interpolate(x, (h + grow, w + grow), mode="nearest")
        y = torch.cat([src, bgr], dim=1)
        if three:
            y = F.pad(y, (2, 2, 2, 2))
        x = self._stage2(torch.cat([x, y], dim=1))
        ref = torch.ones_like(x[:, :1, ::4, ::4])
        return x[:, :1], x[:, 1:], ref


def _reorder_input(conv: nn.Conv2d) -> nn.Conv2d:
    """conv1 taking [hidden 32, alpha, fgr 3, frame 3, plate 3] → the same conv on [alpha, fgr 3,
    error (zero weight), hidden 32, frame 3, plate 3]: the base network's own channel order."""
    weight = conv.weight.detach()
    out = nn.Conv2d(weight.shape[1] + 1, weight.shape[0], conv.kernel_size, bias=conv.bias is not None)
    zero = torch.zeros_like(weight[:, :1])
    with torch.no_grad():
        out.weight.copy_(torch.cat([weight[:, 32:36], zero, weight[:, :32], weight[:, 36:]], dim=1))
        if conv.bias is not None:
            out.bias.copy_(conv.bias.detach())
    return out.to(weight.device, weight.dtype)


def _polyphase_conv1(conv1: nn.Conv2d) -> tuple[nn.Conv2d, nn.Conv2d]:
    """conv1 (3x3, valid) after exact 2x bilinear upsampling, as convolutions on the coarse map.

    Upsampled row 2m+1 = 3/4 x[m] + 1/4 x[m+1] and row 2m = 1/4 x[m-1] + 3/4 x[m] (away from
    borders), so conv1 output row 2p+phase of a window reads coarse rows p..p+2 with the 3x3
    matrix ``A[phase]`` below; in 2-D the kernel of phase (i, j) is ``A[i]^T K A[j]`` for each
    channel pair. The four phases are stacked as output channels ``c * 4 + 2i + j`` so that
    ``pixel_shuffle(·, 2)`` interleaves them. Returns (phase conv on the 37 base channels,
    conv on the 6 half-resolution frame/plate channels, without bias).
    """
    weight = conv1.weight.detach().to(torch.float64)
    feats, image = weight[:, :-6], weight[:, -6:]
    a = torch.tensor(
        [
            [[0.75, 0.25, 0.0], [0.25, 0.75, 0.0], [0.0, 0.75, 0.25]],
            [[0.25, 0.75, 0.0], [0.0, 0.75, 0.25], [0.0, 0.25, 0.75]],
        ],
        dtype=torch.float64,
    )  # a[phase, tap d, coarse row k]
    phases = feats.new_zeros(feats.shape[0], 4, *feats.shape[1:])
    for i in range(2):
        for j in range(2):
            phases[:, 2 * i + j] = torch.einsum("oide,dk,el->oikl", feats, a[i], a[j])
    out = feats.shape[0]
    phase_conv = nn.Conv2d(feats.shape[1], 4 * out, 3, bias=conv1.bias is not None)
    image_conv = nn.Conv2d(6, out, 3, bias=False)
    with torch.no_grad():
        phase_conv.weight.copy_(phases.reshape(4 * out, *feats.shape[1:]))
        if conv1.bias is not None:
            phase_conv.bias.copy_(conv1.bias.detach().repeat_interleave(4))
        image_conv.weight.copy_(image)
    dtype, device = conv1.weight.dtype, conv1.weight.device
    return phase_conv.to(device, dtype), image_conv.to(device, dtype)


def _nearest_phase_conv3(conv3: nn.Conv2d) -> tuple[nn.Conv2d, nn.Conv2d]:
    """conv3 (3x3, valid) over cat(nearest2x(x), image) → (2x2 phase conv of x, 3x3 conv of image).

    Output row 2p (phase 0) reads upsampled rows 2p..2p+2 = source rows p, p, p+1; row 2p+1 reads
    p, p+1, p+1. Phase (i, j) kernel = ``b[i]^T K b[j]`` (2x2), output channel ``o * 4 + 2i + j``.
    """
    weight = conv3.weight.detach().to(torch.float64)
    feats, image = weight[:, :-6], weight[:, -6:]
    b = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]], dtype=torch.float64)
    phases = feats.new_zeros(feats.shape[0], 4, feats.shape[1], 2, 2)
    for i in range(2):
        for j in range(2):
            phases[:, 2 * i + j] = torch.einsum("oide,dk,el->oikl", feats, b[i], b[j])
    out = feats.shape[0]
    phase_conv = nn.Conv2d(feats.shape[1], 4 * out, 2, bias=False)
    image_conv = nn.Conv2d(6, out, 3, bias=conv3.bias is not None)
    with torch.no_grad():
        phase_conv.weight.copy_(phases.reshape(4 * out, feats.shape[1], 2, 2))
        image_conv.weight.copy_(image)
        if conv3.bias is not None:
            image_conv.bias.copy_(conv3.bias.detach())
    dtype, device = conv3.weight.dtype, conv3.weight.device
    return phase_conv.to(device, dtype), image_conv.to(device, dtype)


def _image_windows(src, bgr, b, top, left, size) -> torch.Tensor:
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


def _phase_weights(weight: torch.Tensor) -> torch.Tensor:
    """3x3 kernels (O, I, 3, 3) after exact 2x bilinear upsampling → 4 phase kernels (4*O, I, 3, 3).

    Row 2p + phase of a valid 3x3 convolution over the upsampled map reads source rows p..p+2 with
    the matrix ``a[phase]`` (taps x source rows); in 2-D the phase (i, j) kernel is ``a[i]^T K a[j]``.
    Output channel ``o * 4 + 2i + j`` so that ``pixel_shuffle(·, 2)`` interleaves the phases.
    """
    even = [[0.75, 0.25, 0.0], [0.25, 0.75, 0.0], [0.0, 0.75, 0.25]]
    odd = [[0.25, 0.75, 0.0], [0.0, 0.75, 0.25], [0.0, 0.25, 0.75]]
    a = torch.tensor([even, odd], dtype=torch.float64)
    w = weight.detach().to(torch.float64)
    phases = w.new_zeros(w.shape[0], 4, *w.shape[1:])
    for i in range(2):
        for j in range(2):
            phases[:, 2 * i + j] = torch.einsum("oide,dk,el->oikl", w, a[i], a[j])
    return phases.reshape(4 * w.shape[0], *w.shape[1:])


class FastDecoder(nn.Module):
    """The decoder; its last stage (2x upsampling, concatenation, conv4) as a polyphase convolution.

    conv4 reads ``cat(upsample2x(x), x0)``: instead of upsampling 48 channels to full size and
    concatenating, the upsampling is folded into four phase kernels applied to ``x`` itself
    (:func:`_phase_weights`, padding 1) plus a plain convolution of ``x0``. The stencil is exact
    away from the image border; the two outermost output rows and columns (where zero padding and
    ATen's clamped upsampling differ from the stencil) are recomputed the straightforward way.
    """

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.inner = decoder
        conv4 = decoder.conv4
        mid = conv4.in_channels - 6  # the upsampled decoder features; the last 6 are x0 (frame + plate)
        self.conv4_phase = nn.Conv2d(mid, 4 * conv4.out_channels, 3, padding=1, bias=False)
        self.conv4_image = nn.Conv2d(6, conv4.out_channels, 3, padding=1, bias=conv4.bias is not None)
        with torch.no_grad():
            self.conv4_phase.weight.copy_(_phase_weights(conv4.weight[:, :mid]).to(conv4.weight.dtype))
            self.conv4_image.weight.copy_(conv4.weight[:, mid:])
            if conv4.bias is not None:
                self.conv4_image.bias.copy_(conv4.bias)
        self.export_mode = False

    def forward(self, x4, x3, x2, x1, x0) -> torch.Tensor:
        x = self.trunk(x4, x3, x2, x1)
        return self.head(x, x0) if self.phase_ok(x, x0) else self.inner.conv4(self.inner._up_cat(x, x0))

    def trunk(self, x4, x3, x2, x1) -> torch.Tensor:
        """Everything before conv4: the 48-channel features at half the output size."""
        d = self.inner
        x = d.relu(d.bn1(d.conv1(d._up_cat(x4, x3))))
        x = d.relu(d.bn2(d.conv2(d._up_cat(x, x2))))
        return d.relu(d.bn3(d.conv3(d._up_cat(x, x1))))

    def phase_ok(self, x: torch.Tensor, x0: torch.Tensor) -> bool:
        h, w = x.shape[-2:]
        return not self.export_mode and tuple(x0.shape[-2:]) == (2 * h, 2 * w) and h >= 3 and w >= 3

    def head(self, x: torch.Tensor, x0: torch.Tensor, channels: int | None = None) -> torch.Tensor:
        """conv4 by phases; ``channels``: only the first ones from the phase kernels (the others get
        just the ``x0`` part and the exact border, see :meth:`complete_hidden`)."""
        c = channels or self.conv4_phase.out_channels // 4
        out = self.conv4_image(x0)
        phase = F.conv2d(x, self.conv4_phase.weight[: 4 * c], None, 1, 1)
        out[:, :c] += F.pixel_shuffle(phase, 2)
        self._fix_border(out, x, x0)
        return out

    def _fix_border(self, out: torch.Tensor, x: torch.Tensor, x0: torch.Tensor) -> None:
        """Rows/cols 0, 1 and the last two, from the exact upsampling of a few source rows/cols."""
        d = self.inner
        h, w = x.shape[-2:]
        hh, ww = 2 * h, 2 * w
        top = d.conv4(torch.cat([_up(x[:, :, :3], (6, ww))[:, :, :3], x0[:, :, :3]], 1))
        bottom = d.conv4(torch.cat([_up(x[:, :, -2:], (4, ww))[:, :, 1:], x0[:, :, -3:]], 1))
        left = d.conv4(torch.cat([_up(x[..., :3], (hh, 6))[..., :3], x0[..., :3]], 1))
        right = d.conv4(torch.cat([_up(x[..., -2:], (hh, 4))[..., 1:], x0[..., -3:]], 1))
        out[:, :, :2] = top[:, :, :2]
        out[:, :, -2:] = bottom[:, :, -2:]
        out[..., :2] = left[..., :2]
        out[..., -2:] = right[..., -2:]

    def complete_hidden_dense(self, raw: torch.Tensor, x: torch.Tensor, first: int = 5) -> None:
        """Like :meth:`complete_hidden` for every pixel (used when most of them are needed)."""
        phase = F.pixel_shuffle(F.conv2d(x, self.conv4_phase.weight[4 * first :], None, 1, 1), 2)
        raw[:, first:, 2:-2, 2:-2] += phase[:, :, 2:-2, 2:-2].to(raw.dtype)

    def complete_hidden(self, raw: torch.Tensor, x: torch.Tensor, needed: torch.Tensor, first: int = 5) -> None:
        """Add the phase part of channels ``first:`` to ``raw`` (B, C, 2h, 2w), in place, where ``needed``.

        ``needed`` (B, 2h, 2w) bool marks output pixels that will be read. Their 2x2 groups away from
        the border (already exact) are computed as one matrix product of 3x3 neighbourhoods of ``x``
        with the phase kernels: the hidden channels are only read around refined patches.
        """
        batch, cin, h, w = x.shape
        low = F.max_pool2d(needed[:, None].to(x.dtype), 2)[:, 0] > 0  # (B, h, w)
        low[:, 0], low[:, -1], low[:, :, 0], low[:, :, -1] = False, False, False, False
        b, p, q = torch.nonzero(low, as_tuple=True)
        if b.numel() == 0:
            return
        ar = torch.arange(-1, 2, device=x.device)
        rows = (b[:, None, None] * h + (p[:, None, None] + ar[:, None])) * w + (q[:, None, None] + ar[None, :])
        cols = x.permute(0, 2, 3, 1).reshape(batch * h * w, cin).index_select(0, rows.reshape(-1))
        cols = cols.view(b.numel(), 9 * cin)  # (U, 3*3*cin) in (dy, dx, c) order
        weight = self.conv4_phase.weight[4 * first :]  # (4 * (C - first), cin, 3, 3)
        vals = cols @ weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).t().to(cols.dtype)
        vals = vals.view(-1, weight.shape[0] // 4, 2, 2).permute(0, 2, 3, 1)  # (U, i, j, channel)
        hh, ww = 2 * h, 2 * w
        ij = torch.arange(2, device=x.device)
        pix = (b[:, None, None] * hh + (2 * p[:, None, None] + ij[:, None])) * ww + (2 * q[:, None, None] + ij[None, :])
        channels = raw.shape[1]
        flat = raw.permute(0, 2, 3, 1).reshape(batch * hh * ww, channels)  # a view: raw is channels_last
        flat[:, first:].index_add_(0, pix.reshape(-1), vals.reshape(-1, channels - first).to(raw.dtype))


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


class FastMattingBase(nn.Module):
    """MattingBase with BN folded and channels_last convolutions; same outputs."""

    def __init__(self, model: MattingBase, channels_last: bool = True, fuse: bool = True) -> None:
        super().__init__()
        base = copy.copy(model)  # shallow: only the three parts are deep-copied below
        self.backbone_name = model.backbone_name
        self.backbone = copy.deepcopy(base.backbone).eval()
        self.aspp = copy.deepcopy(base.aspp).eval()
        self.decoder = copy.deepcopy(base.decoder).eval()
        self.channels_last = channels_last
        self.export_mode = False
        self.precision = "fp32"
        self.compiled = False  # see optimize(compile=True)
        self._compiled = None
        for part in (self.backbone, self.aspp, self.decoder):
            if fuse:
                fold_batchnorm(part)
        self.decoder = FastDecoder(self.decoder)
        if channels_last:
            for part in (self.backbone, self.aspp, self.decoder):
                part.to(memory_format=torch.channels_last)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.compiled and not self.export_mode:
            compiled = self._compiled_features()
            if compiled is not None:
                try:
                    with _inductor_freezing():
                        return compiled(x)
                except Exception as exc:  # no C++ compiler, unsupported op...: stay correct, just slower
                    warnings.warn(
                        f"torch.compile failed ({type(exc).__name__}); using the uncompiled network", stacklevel=2
                    )
                    self.compiled = False
        return self._features(x)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        with _autocast(self, x):
            deep, *skips = self.backbone(x)
            y = self.decoder(self.aspp(deep), *skips)
        return y.to(x.dtype)

    def _compiled_features(self):
        if self._compiled is None:
            self._compiled = torch.compile(self._features, dynamic=False)
        return self._compiled

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _check_pair(src, bgr)
        raw = activate(self.features(torch.cat([src, bgr], dim=1)), inplace=not self.export_mode)
        pha, res, err, hid = (t.contiguous() for t in (raw[:, :1], raw[:, 1:4], raw[:, 4:5], raw[:, 5:]))
        return pha, (res + src).clamp(0, 1), err, hid

    def set_precision(self, precision: str = "fp32") -> nn.Module:
        """'fp32' (parity), 'bf16' (CPU with AVX512-BF16/AMX, or CUDA) or 'fp16' (CUDA) convolutions."""
        if precision not in PRECISIONS:
            raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        for m in self.modules():
            if isinstance(m, FastMattingBase | FastRefiner):
                m.precision = precision
        return self

    def set_export_mode(self, on: bool = True) -> nn.Module:
        """Pure-functional ops and ONNX-exact resizing (see :func:`resize_exact`) for tracing."""
        for m in self.modules():
            if hasattr(m, "export_mode"):
                m.export_mode = on
        return self


class FastMattingRefine(FastMattingBase):
    """MattingRefine with the optimized refiner; same outputs.

    ``backbone_scale`` is shared with the MattingRefine it was made from (setting either changes
    both), so code that adjusts the model's scale per frame size keeps working.
    """

    @property
    def backbone_scale(self) -> float:
        return self._source[0].backbone_scale

    @backbone_scale.setter
    def backbone_scale(self, value: float) -> None:
        self._source[0].backbone_scale = float(value)

    def __init__(self, model: MattingRefine, channels_last: bool = True, fuse: bool = True) -> None:
        super().__init__(model, channels_last=channels_last, fuse=fuse)
        self._source = [model]  # a list: not registered as a submodule (no second copy in state_dict)
        self.refiner = FastRefiner(copy.deepcopy(model.refiner).eval(), channels_last=channels_last, fuse=fuse)

    def forward(self, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        _check_pair(src, bgr)
        h, w = src.shape[-2:]
        if h % 4 or w % 4:
            raise InputError(f"MattingRefine needs height and width divisible by 4; got {h}x{w}")
        scale = self.backbone_scale
        size = (scaled_size(h, scale), scaled_size(w, scale))
        # Resize frame and plate separately: cheaper than concatenating at full resolution first.
        if scale == 0.25:
            sm = torch.cat([quarter_resolution(src), quarter_resolution(bgr)], dim=1)
        elif self.export_mode and scale != 0.5:
            sm = torch.cat([resize_exact(src, size), resize_exact(bgr, size)], dim=1)
        else:
            sm = torch.cat([F.interpolate(t, size, mode="bilinear", align_corners=False) for t in (src, bgr)], 1)
        lazy = not (self.export_mode or self.compiled) and self.refiner.mode != "full" and scale == 0.25
        if lazy and self.refiner.kernel_size == 3:
            raw, cells = self._features_lazy_hidden(sm, (h, w))
        else:
            raw, cells = activate(self.features(sm), inplace=not self.export_mode), None
        pha, res, ref = self.refiner(src, bgr, raw, scale, cells)
        fgr_sm = (sm[:, :3] + raw[:, 1:4]).clamp(0, 1)
        pha_sm, err_sm = raw[:, :1].contiguous(), raw[:, 4:5].contiguous()
        if self.export_mode or self.refiner.mode == "full":
            return pha.clamp(0, 1), (res + src).clamp(0, 1), pha_sm, fgr_sm.contiguous(), err_sm, ref
        # pha and res are views of one fresh (B, 4, H, W) buffer: finish it in place.
        res.add_(src)
        return pha.clamp_(0, 1), res.clamp_(0, 1), pha_sm, fgr_sm.contiguous(), err_sm, ref

    # Above this fraction of the feature grid, the hidden channels are computed densely.
    sparse_hidden_max = 0.5

    def _features_lazy_hidden(self, sm: torch.Tensor, size: tuple) -> tuple[torch.Tensor, tuple]:
        """Base outputs with the 32 hidden channels computed only where the refiner reads them.

        The refiner reads the hidden map only in the 5x5 coarse blocks around the selected cells
        (a few percent of the frame at HD with trained weights). So conv4's alpha, foreground and
        error channels are computed everywhere, the cells selected from the error, and then the
        hidden channels completed for those blocks (:meth:`FastDecoder.complete_hidden`).
        """
        x0 = sm.contiguous(memory_format=torch.channels_last) if self.channels_last else sm
        with _autocast(self, x0):
            deep, *skips = self.backbone(x0)
            x = self.decoder.trunk(self.aspp(deep), *skips[:-1])
            if not self.decoder.phase_ok(x, x0):
                raw = self.decoder.inner.conv4(self.decoder.inner._up_cat(x, x0)).to(sm.dtype)
                return activate(raw, inplace=True), None
            raw = self.decoder.head(x, x0, channels=5)
        raw = raw.to(sm.dtype)
        raw[:, 0:1].clamp_(0, 1)
        raw[:, 4:5].clamp_(0, 1)
        cells = self.refiner.cells(raw, 0.25, size)
        _, b, py, px, _ = cells
        batch, _, ch, cw = raw.shape
        ar = torch.arange(-2, 3, device=sm.device)
        rows, cols = (py[:, None] + ar).clamp(0, ch - 1), (px[:, None] + ar).clamp(0, cw - 1)
        needed = torch.zeros(batch * ch * cw, dtype=torch.bool, device=sm.device)
        needed[((b[:, None, None] * ch + rows[:, :, None]) * cw + cols[:, None, :]).reshape(-1)] = True
        needed = needed.view(batch, ch, cw)
        if float(needed.float().mean()) > self.sparse_hidden_max or not raw.is_contiguous(
            memory_format=torch.channels_last
        ):
            with _autocast(self, x0):
                self.decoder.complete_hidden_dense(raw, x)
            raw[:, 5:].relu_()
            return raw, cells
        with _autocast(self, x0):
            self.decoder.complete_hidden(raw, x.to(raw.dtype), needed)
        raw[:, 5:].relu_()
        return raw, cells


def optimize(
    model: nn.Module,
    *,
    channels_last: bool = True,
    fuse: bool = True,
    precision: str = "fp32",
    compile: bool = False,  # noqa: A002 - the name users know from torch
) -> nn.Module:
    """A faster module with the same forward outputs (within 1e-4) as ``model``; ``model`` is not changed.

    MattingRefine → :class:`FastMattingRefine`, MattingBase → :class:`FastMattingBase`; anything
    else (e.g. the classical keyer) is returned as is. ``channels_last`` helps oneDNN on CPU;
    ``fuse`` folds BatchNorm into the convolutions. ``precision`` 'bf16' / 'fp16' runs the
    convolutions under autocast: faster, but outside the 1e-4 parity (see the README's numbers).
    ``compile`` runs the base network through ``torch.compile`` (inductor, freezing): about 30%
    faster on CPU, within parity, but each new input size costs a compilation (~25 s on 2 cores)
    and it needs a C++ compiler (falls back with a warning). Meant for long videos.
    """
    if isinstance(model, MattingRefine):
        fast: FastMattingBase = FastMattingRefine(model, channels_last=channels_last, fuse=fuse)
    elif isinstance(model, MattingBase):
        fast = FastMattingBase(model, channels_last=channels_last, fuse=fuse)
    else:
        return model
    fast.compiled = bool(compile)
    return fast.set_precision(precision).eval()
