"""Match the plate's exposure and white balance to each frame's background.

Auto-exposure and auto-white-balance drift between the plate shot and the take, and the network
reads every brightness difference as "foreground". A per-channel gain (frame / plate) estimated on
background pixels (the previous frame's matte says which) absorbs that drift. The gain is the
median of per-pixel ratios (robust to what the matte misses), clamped, and smoothed over time
so the plate itself does not flicker. Runs in torch on the inference device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAIN_RANGE = (0.5, 2.0)
VALID_RANGE = (0.03, 0.97)  # ignore clipped shadows and highlights (their ratio is meaningless)
MIN_PIXELS = 64
WORK_SIDE = 160  # gains are estimated on a downscaled copy: fast and less noisy


def _small(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    factor = max(1, max(h, w) // WORK_SIDE)
    return F.avg_pool2d(x, factor, factor) if factor > 1 else x


def channel_gains(src: torch.Tensor, bgr: torch.Tensor, background: torch.Tensor | None = None) -> torch.Tensor | None:
    """Per-channel gain g with ``src ≈ g · bgr`` on background pixels; (3,) or None if too few pixels.

    ``src``/``bgr`` (3, H, W) float in [0, 1]; ``background`` (1, H, W) weights (1 = background).
    Without a matte every valid pixel votes (the median ignores a subject covering < half the view).
    """
    s, b = _small(src[None].float())[0], _small(bgr[None].float())[0]
    valid = ((s > VALID_RANGE[0]) & (s < VALID_RANGE[1]) & (b > VALID_RANGE[0]) & (b < VALID_RANGE[1])).all(0)
    if background is not None:
        valid &= _small(background[None].float())[0, 0] > 0.95
    if int(valid.sum()) < MIN_PIXELS:
        return None
    ratio = s[:, valid] / b[:, valid]
    return ratio.median(dim=1).values.clamp(*GAIN_RANGE)


class ColorMatcher:
    """Stateful plate colour matching over a sequence of frames (see the module docstring)."""

    def __init__(self, momentum: float = 0.6) -> None:
        self.momentum = momentum
        self.gains: torch.Tensor | None = None

    def __call__(self, src: torch.Tensor, bgr: torch.Tensor, prev_alpha: torch.Tensor | None) -> torch.Tensor:
        """``bgr`` (B, 3, H, W) scaled per frame to ``src``'s exposure; ``prev_alpha`` (1, 1, H, W) or None.

        Frames of one batch share the matte of the frame before the batch.
        """
        background = None if prev_alpha is None else (prev_alpha[0] < 0.05).float()
        out = []
        for i in range(src.shape[0]):
            plate = bgr[i if bgr.shape[0] > 1 else 0]
            gains = channel_gains(src[i], plate, background)
            if gains is not None:
                self.gains = gains if self.gains is None else self.momentum * self.gains + (1 - self.momentum) * gains
            g = self.gains if self.gains is not None else torch.ones(3, device=src.device)
            out.append((plate * g.to(plate.dtype).view(3, 1, 1)).clamp_(0, 1))
        return torch.stack(out)
