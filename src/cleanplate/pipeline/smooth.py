"""Temporal smoothing of the matte, and the flicker metric it is judged by.

Per-frame matting flickers on a static shot: sensor noise moves the matte by a few levels every
frame. An exponential moving average removes that, but would smear anything that moves. So the
average is *gated* per pixel by how much the frame itself changed there: where the image is
still (blurred luma difference below ``motion``) the matte is averaged, where it moved the new
matte is taken as is. A large matte jump on a still pixel is also taken as is (something
genuinely appeared), so the gate never hides a real change for long.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)


def flicker(alphas: Iterable[np.ndarray | torch.Tensor]) -> float:
    """Mean |alpha_t − alpha_{t−1}| over all pixels and consecutive frames (alphas in [0, 1]).

    On a static shot every change is flicker, so lower is better; 0 for fewer than two frames.
    """
    total, count, prev = 0.0, 0, None
    for a in alphas:
        cur = a.detach().float().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float32)
        if prev is not None:
            total += float(np.abs(cur - prev).mean())
            count += 1
        prev = cur
    return total / count if count else 0.0


def _luma(src: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(LUMA, device=src.device, dtype=src.dtype).view(1, 3, 1, 1)
    y = (src * w).sum(1, keepdim=True)
    return F.avg_pool2d(y, 5, stride=1, padding=2, count_include_pad=False)


class MatteSmoother:
    """Motion-gated EMA over a sequence of mattes (see the module docstring).

    ``strength`` in [0, 1): weight of the past on a perfectly still pixel (0 disables);
    ``motion``: blurred luma change (0..1) at which smoothing stops; ``jump``: matte change that is
    always taken as real.
    """

    def __init__(self, strength: float = 0.6, motion: float = 0.04, jump: float = 0.5) -> None:
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"smoothing strength must be in [0, 1); got {strength}")
        self.strength, self.motion, self.jump = strength, motion, jump
        self._luma: torch.Tensor | None = None
        self._alpha: torch.Tensor | None = None

    def reset(self) -> None:
        self._luma = self._alpha = None

    def __call__(self, alpha: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
        """Smooth ``alpha`` (B, 1, H, W) given the frames ``src`` (B, 3, H, W), in order."""
        if self.strength == 0:
            return alpha
        luma = _luma(src.float())
        out = []
        for i in range(alpha.shape[0]):
            a = alpha[i : i + 1].float()
            if self._alpha is None or self._alpha.shape != a.shape:
                smoothed = a
            else:
                still = (1 - (luma[i : i + 1] - self._luma).abs() / self.motion).clamp_(0, 1)
                w = self.strength * still * ((a - self._alpha).abs() < self.jump).float()
                smoothed = w * self._alpha + (1 - w) * a
            self._alpha, self._luma = smoothed, luma[i : i + 1]
            out.append(smoothed)
        return torch.cat(out).to(alpha.dtype)
