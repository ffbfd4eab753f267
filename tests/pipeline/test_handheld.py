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


def test_a_shifted_plate_is_reported_when_the_job_runs_and_only_beyond_what_the_model_registers(
    clip_factory, tmp_path: Path
) -> None:
    """The shift is measured once when the job is prepared (before any model loads) and judged
    against the model's own registration when it runs."""
    import warnings

    from cleanplate.pipeline import prepare_video
    from cleanplate.plate.fit import PlateWarning

    clip = clip_factory("static.mp4", n=3, size=(192, 256), static=True, noise=1.0)
    moved = cv2.warpAffine(clip.plate, np.float32([[1, 0, -8], [0, 1, 0]]), (256, 192), borderMode=cv2.BORDER_REFLECT)

    class Registering(FakeMatter):
        def plate_shift_tolerance(self, height: int, width: int) -> float:
            return 0.05  # 12.8 px of 256

    def shift_warnings(matter, name: str) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            job = prepare_video(
                clip.path, [parse_output(str(tmp_path / name))], moved, options=VideoOptions(progress=False)
            )
            assert not [w for w in caught if issubclass(w.category, PlateWarning)]  # nothing judged yet
            job.run(matter)
        return [str(w.message) for w in caught if issubclass(w.category, PlateWarning)]

    notes = shift_warnings(FakeMatter(), "plain")
    assert len(notes) == 1 and "(+8, " in notes[0], notes
    assert shift_warnings(Registering(), "registering") == []
