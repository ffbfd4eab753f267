"""Exposure / white-balance matching of the plate to the frame's background."""

from __future__ import annotations

import torch

from cleanplate.plate.color import ColorMatcher, channel_gains


def _scene(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.15 + 0.6 * torch.rand(3, 48, 64, generator=g)


def test_gains_recovered_on_background_pixels() -> None:
    plate = _scene()
    gains = torch.tensor([1.2, 0.95, 0.8])
    frame = plate * gains.view(3, 1, 1)
    frame[:, 10:40, 20:44] = torch.tensor([0.9, 0.1, 0.1]).view(3, 1, 1)  # subject
    background = torch.ones(1, 48, 64)
    background[:, 10:40, 20:44] = 0
    assert torch.allclose(channel_gains(frame, plate, background), gains, atol=0.02)
    # without a matte the median still holds while the subject covers less than half the view
    assert torch.allclose(channel_gains(frame, plate), gains, atol=0.05)


def test_too_few_usable_pixels_gives_none() -> None:
    plate = torch.ones(3, 16, 16)  # fully clipped: no ratio is meaningful
    assert channel_gains(plate * 0.9, plate) is None


def test_matcher_brings_the_plate_to_the_frame_and_smooths_over_time() -> None:
    plate = _scene(1)
    matcher = ColorMatcher(momentum=0.5)
    frames = torch.stack([plate * 1.3, plate * 1.3])
    matched = matcher(frames, plate[None], None)
    assert (matched[1] - frames[1]).abs().mean() < 0.01 < (plate - frames[1]).abs().mean()
    before = matcher.gains.clone()
    matcher((plate * 0.8)[None], plate[None], None)  # a sudden change moves the gain only part of the way
    assert (before > matcher.gains).all() and (matcher.gains > 0.8).all()
