"""Flicker metric and motion-gated matte smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cleanplate.pipeline.smooth import MatteSmoother, flicker


def test_flicker_metric() -> None:
    assert flicker([np.zeros((4, 4))]) == 0.0
    assert flicker([np.zeros((4, 4)), np.ones((4, 4)), np.ones((4, 4))]) == pytest.approx(0.5)


def _static_noisy(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = torch.zeros(1, 1, 32, 32)
    base[..., 8:24, 8:24] = 1
    src = torch.rand(1, 3, 32, 32, generator=g)
    alphas = [(base + 0.1 * torch.randn(1, 1, 32, 32, generator=g)).clamp(0, 1) for _ in range(n)]
    frames = [src + 0.005 * torch.randn(1, 3, 32, 32, generator=g) for _ in range(n)]
    return alphas, frames


def test_smoothing_cuts_flicker_on_a_static_shot() -> None:
    alphas, frames = _static_noisy(12)
    smoother = MatteSmoother(0.6)
    smoothed = [smoother(a, f) for a, f in zip(alphas, frames, strict=True)]
    raw, smooth = flicker(alphas), flicker(smoothed)
    assert smooth < 0.6 * raw, (raw, smooth)


def test_moving_pixels_are_not_smeared() -> None:
    smoother = MatteSmoother(0.9)
    still = torch.zeros(1, 3, 16, 16)
    moved = still.clone()
    moved[..., :, 8:] = 1.0  # the right half of the image changed: something moved there
    smoother(torch.zeros(1, 1, 16, 16), still)
    new_alpha = torch.full((1, 1, 16, 16), 0.3)
    out = smoother(new_alpha, moved)
    assert torch.allclose(out[..., :, 12:], new_alpha[..., :, 12:])  # moved: taken as is
    assert out[..., :, :4].max() < 0.05  # still: mostly the past


def test_zero_strength_is_identity_and_bad_strength_refused() -> None:
    a = torch.rand(2, 1, 8, 8)
    assert torch.equal(MatteSmoother(0.0)(a, torch.rand(2, 3, 8, 8)), a)
    with pytest.raises(ValueError):
        MatteSmoother(1.0)
