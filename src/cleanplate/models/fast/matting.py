"""The fast networks: FastMattingBase / FastMattingRefine and :func:`optimize` that makes them."""

from __future__ import annotations

import copy
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputError
from ..guided import GuidedMatting
from ..matting import MattingBase, MattingRefine, _check_pair, split_base_output
from .decoder import FastDecoder
from .fold import fold_batchnorm
from .precision import PRECISIONS, autocast, inductor_freezing
from .refiner import FastRefiner
from .windows import quarter_resolution, resize_exact


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
                    with inductor_freezing():
                        return compiled(x)
                except Exception as exc:  # no C++ compiler, unsupported op...: stay correct, just slower
                    warnings.warn(
                        f"torch.compile failed ({type(exc).__name__}); using the uncompiled network", stacklevel=2
                    )
                    self.compiled = False
        return self._features(x)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self, x):
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
        with autocast(self, x0):
            deep, *skips = self.backbone(x0)
            x = self.decoder.trunk(self.aspp(deep), *skips[:-1])
            if not self.decoder.phase_ok(x, x0):
                raw = self.decoder.inner.head(x, x0).to(sm.dtype)
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
            with autocast(self, x0):
                self.decoder.complete_hidden_dense(raw, x)
            raw[:, 5:].relu_()
            return raw, cells
        with autocast(self, x0):
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
    if isinstance(model, GuidedMatting):  # its own folding; bf16/fp16 autocast slows this thin network
        return model.optimized(channels_last=channels_last) if fuse else model
    if isinstance(model, MattingRefine):
        fast: FastMattingBase = FastMattingRefine(model, channels_last=channels_last, fuse=fuse)
    elif isinstance(model, MattingBase):
        fast = FastMattingBase(model, channels_last=channels_last, fuse=fuse)
    else:
        return model
    fast.compiled = bool(compile)
    return fast.set_precision(precision).eval()
