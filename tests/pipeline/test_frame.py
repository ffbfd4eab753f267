"""The per-frame step shared by video and live, and the video job that is checked and loaded once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import cleanplate.pipeline.video as pipeline_video
from cleanplate.errors import InputError, PlateMismatchError
from cleanplate.io.formats import parse_output
from cleanplate.live import FileSink, LiveOptions, LiveSession, open_source
from cleanplate.pipeline import FrameOptions, FrameStep, VideoOptions, prepare_video
from cleanplate.pipeline.render import to_device
from tests.clips import FakeMatter


def test_one_step_runs_every_stage_and_keeps_the_last_matte(clip_factory) -> None:
    clip = clip_factory(n=2, drift=1.5)
    images = np.stack(clip.frames[:2])
    options = FrameOptions(align=True, match_color=True, smooth=0.5)
    step = FrameStep(FakeMatter(), clip.plate, clip.plate.shape[:2], options)
    mattes = step.matte(to_device(torch.from_numpy(images), torch.device("cpu")), images)
    assert len(mattes) == 2 and mattes.alpha.shape == (2, 1, *clip.plate.shape[:2])
    assert mattes.plate.shape == (2, 3, *clip.plate.shape[:2])  # one aligned plate per frame
    assert step.prev_alpha is not None and step.align_stats.frames == 2
    rgba = step.render("rgba", mattes)
    assert rgba.shape == (2, *clip.plate.shape[:2], 4) and rgba.dtype == torch.uint8


def test_bad_smoothing_is_refused_up_front() -> None:
    with pytest.raises(InputError, match="--smooth"):
        FrameOptions(smooth=1.5).check()


def test_live_runs_the_same_step_with_alignment(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=6, drift=1.5, exposure=0.03)
    sink = FileSink(parse_output(f"comp={tmp_path / 'rec.mp4'}"))
    options = LiveOptions(align=True, match_color=True, smooth=0.6, max_frames=4)
    session = LiveSession(FakeMatter(), open_source(str(clip.path)), files=[sink], plate=clip.plate, options=options)
    stats = session.run()
    assert stats.frames == 4
    assert isinstance(session.step, FrameStep) and session.step.align_stats.frames == 4
    assert session.step.color is not None and session.step.smoother is not None


def test_live_plate_frames_skip_then_capture(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=10)
    sink = FileSink(parse_output(f"comp={tmp_path / 'rec.mp4'}"))
    options = LiveOptions(plate_delay=0.0, plate_skip=2, plate_frames=3)  # --plate-frames 2:5
    stats = LiveSession(FakeMatter(), open_source(str(clip.path)), files=[sink], options=options).run()
    assert (stats.seen, stats.plates, stats.frames) == (10, 1, 5)


def test_a_video_job_loads_its_plate_once(clip_factory, tmp_path: Path, monkeypatch) -> None:
    clip = clip_factory(n=3)
    calls = []
    real = pipeline_video.load_plate
    monkeypatch.setattr(pipeline_video, "load_plate", lambda *a, **k: calls.append(1) or real(*a, **k))
    job = prepare_video(
        clip.path, [parse_output(f"alpha={tmp_path / 'm'}")], clip.plate, options=VideoOptions(progress=False)
    )
    result = job.run(FakeMatter())
    assert calls == [1] and result.complete and result.frames == 3


def test_a_plate_of_another_aspect_fails_before_any_model(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=2)
    with pytest.raises(PlateMismatchError):
        prepare_video(clip.path, [parse_output(f"alpha={tmp_path / 'm'}")], clip.plate[:, : clip.plate.shape[0]])
