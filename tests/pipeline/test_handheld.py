"""Handheld camera (alignment, colour matching) and temporal smoothing through the whole pipeline."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cleanplate.io.formats import parse_output
from cleanplate.pipeline import VideoOptions, flicker, process_video
from tests.clips import FakeMatter


def _alphas(folder: Path) -> np.ndarray:
    return np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[..., 3] / 255.0 for p in sorted(folder.glob("*.png"))])


def _run(matter, clip, folder: Path, **options) -> np.ndarray:
    process_video(
        matter, clip.path, [parse_output(f"rgba={folder}")], clip.plate, options=VideoOptions(progress=False, **options)
    )
    return _alphas(folder)


def test_alignment_and_colour_matching_follow_a_drifting_camera(clip_factory, tmp_path: Path) -> None:
    # The camera pans 1.5 px and the exposure rises 3 % per frame; the plate was shot before.
    clip = clip_factory("handheld.mp4", n=8, drift=1.5, exposure=0.03, noise=2.0)
    truth = np.stack(clip.alphas)
    errors = {}
    for name, opts in {
        "plain": {},
        "align": {"align": True},
        "align+color": {"align": True, "match_color": True},
    }.items():
        alpha = _run(FakeMatter(), clip, tmp_path / name.replace("+", "_"), **opts)
        errors[name] = float(np.abs(alpha - truth)[1:].mean())  # frame 0 has no previous matte to mask with
    assert errors["align"] < 0.6 * errors["plain"], errors
    assert errors["align+color"] < 0.6 * errors["align"], errors


@pytest.mark.slow
def test_smoothing_cuts_flicker_on_a_static_shot(clip_factory, tmp_path: Path, capsys) -> None:
    """The flicker metric (mean |α_t − α_{t−1}|) on a static shot, with and without --smooth."""
    import cleanplate

    matter = cleanplate.load("classical", device="cpu")  # a real (non-random) matte for a meaningful number
    clip = clip_factory("static.mp4", n=10, static=True, noise=4.0)
    raw = flicker(_run(matter, clip, tmp_path / "raw"))
    smooth = flicker(_run(matter, clip, tmp_path / "smooth", smooth=0.6))
    with capsys.disabled():
        print(
            f"\nflicker on a static shot (classical keyer, 128x96, noise σ=4): raw {raw:.5f}, --smooth 0.6 {smooth:.5f}"
        )
    assert smooth < 0.75 * raw, (raw, smooth)


def test_smoothing_does_not_smear_a_moving_subject(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory("moving.mp4", n=8, noise=2.0)
    truth = np.stack(clip.alphas)
    raw = np.abs(_run(FakeMatter(), clip, tmp_path / "raw") - truth).mean()
    smooth = np.abs(_run(FakeMatter(), clip, tmp_path / "smooth", smooth=0.6) - truth).mean()
    assert smooth <= raw + 0.005, (raw, smooth)


def test_the_default_model_registers_a_drifting_camera_by_itself(clip_factory, tmp_path: Path, monkeypatch) -> None:
    """Without --align the plate-guided default follows a slow pan (0.4 px and 0.06 deg per frame)."""
    import cleanplate
    import cleanplate.models.guided.net as net
    from cleanplate.models.guided.register import identity

    clip = clip_factory("pan.mp4", n=12, size=(288, 384), drift=0.4, noise=2.0)
    truth = np.stack(clip.alphas)
    registered = float(np.abs(_run(cleanplate.load(device="cpu"), clip, tmp_path / "reg") - truth).mean())
    monkeypatch.setattr(net, "register", lambda src, bgr: identity(src.shape[0], src))
    fixed = float(np.abs(_run(cleanplate.load(device="cpu"), clip, tmp_path / "fixed") - truth).mean())
    assert registered < 0.75 * fixed, (registered, fixed)
