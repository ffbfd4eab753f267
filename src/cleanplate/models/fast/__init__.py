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

from .decoder import FastDecoder
from .fold import fold_batchnorm
from .matting import FastMattingBase, FastMattingRefine, activate, optimize, scaled_size
from .phase import phase_kernels
from .precision import PRECISIONS
from .refiner import FastRefiner
from .windows import (
    bilinear_taps,
    gather_windows,
    half_resolution,
    image_windows,
    quarter_resolution,
    resize_exact,
    resized_windows,
    window_span,
    window_weights,
)

__all__ = [
    "PRECISIONS",
    "FastDecoder",
    "FastMattingBase",
    "FastMattingRefine",
    "FastRefiner",
    "activate",
    "bilinear_taps",
    "fold_batchnorm",
    "gather_windows",
    "half_resolution",
    "image_windows",
    "optimize",
    "phase_kernels",
    "quarter_resolution",
    "resize_exact",
    "resized_windows",
    "scaled_size",
    "window_span",
    "window_weights",
]
