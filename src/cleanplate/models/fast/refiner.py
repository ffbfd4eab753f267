"""The fast refiner: BN folded, window-only patch extraction, phase convolutions (see the package docstring)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..refiner import Refiner
from .fold import fold_batchnorm
from .phase import BILINEAR_2X, NEAREST_2X, phase_kernels
from .precision import autocast
from .windows import gather_windows, half_resolution, image_windows, resize_exact, resized_windows, window_span


def _min_size(a: int, b):
    """min(a, b) for a size that may be an int, a symbolic int (torch.export) or a 0-d tensor (tracing)."""
    if isinstance(b, torch.Tensor):
        return torch.clamp(b, max=a)
    return torch.sym_min(a, b)


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
        with autocast(self, x):
            y = F.relu(self.bn1(self.conv1(self._layout(x))))
            y = F.relu(self.bn2(self.conv2(y)))
        return y.to(x.dtype)

    def _stage2(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self, x):
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

        ``raw`` is the activated base output (:func:`~.matting.activate`) at the coarse size; ``cells`` as
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
        y = image_windows(src, bgr, b, 4 * py - p2, 4 * px - p2, size2)  # (N, 2s, 2s, 6)
        if three:
            return self._stage2_phase(x, y).contiguous()  # (N, 4, 4, 4)
        # Nearest 2x upsampling as a broadcast view, concatenated with the full-resolution windows in one copy.
        x = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, s, 2, s, 2, c)
        x = torch.cat([x, y.view(n, s, 2, s, 2, y.shape[-1])], dim=-1).view(n, 2 * s, 2 * s, c + y.shape[-1])
        return self._stage2(x.permute(0, 3, 1, 2)).contiguous()

    def _stage2_phase(self, x: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        """conv3 over cat(nearest2x(x), img) as a 2x2 phase convolution of ``x`` plus a conv of ``img``.

        Nearest upsampling repeats each row twice, so row 2p + phase of the valid 3x3 convolution
        reads source rows p, p+1 with the summed taps (:data:`~.phase.NEAREST_2X`); no 8x8 map
        of the 16 stage-1 channels and no concatenation is built. Exact for every patch.
        """
        with autocast(self, img):
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
        with autocast(self, block):
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

    Returns (phase conv on the 37 base channels, :func:`~.phase.phase_kernels` with the bilinear
    stencil; conv on the 6 half-resolution frame/plate channels, without bias).
    """
    weight = conv1.weight.detach().to(torch.float64)
    feats, image = weight[:, :-6], weight[:, -6:]
    out = feats.shape[0]
    phase_conv = nn.Conv2d(feats.shape[1], 4 * out, 3, bias=conv1.bias is not None)
    image_conv = nn.Conv2d(6, out, 3, bias=False)
    with torch.no_grad():
        phase_conv.weight.copy_(phase_kernels(feats, BILINEAR_2X))
        if conv1.bias is not None:
            phase_conv.bias.copy_(conv1.bias.detach().repeat_interleave(4))
        image_conv.weight.copy_(image)
    dtype, device = conv1.weight.dtype, conv1.weight.device
    return phase_conv.to(device, dtype), image_conv.to(device, dtype)


def _nearest_phase_conv3(conv3: nn.Conv2d) -> tuple[nn.Conv2d, nn.Conv2d]:
    """conv3 (3x3, valid) over cat(nearest2x(x), image) → (2x2 phase conv of x, 3x3 conv of image).

    The phase kernels are :func:`~.phase.phase_kernels` with the nearest stencil (2x2 each).
    """
    weight = conv3.weight.detach().to(torch.float64)
    feats, image = weight[:, :-6], weight[:, -6:]
    out = feats.shape[0]
    phase_conv = nn.Conv2d(feats.shape[1], 4 * out, 2, bias=False)
    image_conv = nn.Conv2d(6, out, 3, bias=conv3.bias is not None)
    with torch.no_grad():
        phase_conv.weight.copy_(phase_kernels(feats, NEAREST_2X))
        image_conv.weight.copy_(image)
        if conv3.bias is not None:
            image_conv.bias.copy_(conv3.bias.detach())
    dtype, device = conv3.weight.dtype, conv3.weight.device
    return phase_conv.to(device, dtype), image_conv.to(device, dtype)
