"""process_video end to end: several outputs from one pass, exact frames and timestamps, audio,
rotation, trimming, bounded memory, Ctrl-C and crashes leaving playable partial files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

import cleanplate.pipeline.video as pipeline_video
from cleanplate.errors import InputError, OutputError, PlateMismatchError
from cleanplate.io.formats import parse_output, parse_save
from cleanplate.io.video_reader import VideoReader, probe
from cleanplate.pipeline import VideoInterrupted, VideoOptions, process_video
from tests.clips import FakeMatter, audio_seconds, decode_all

AAC_FRAME_S = 1024 / 44100
# |alpha from file − alpha from Matter.matte| (0..1) per output, for the noisy random-weight matte.
# PNG / ProRes 4444 hold 8-bit alpha (exact up to rounding and batch-vs-single float noise); VP9
# and H.264 are lossy: bounded by max and mean.
TOL = {"png": (2 / 255, 1 / 255), "prores4444": (3 / 255, 2 / 255), "vp9": (0.15, 0.02), "h264": (0.15, 0.02)}


def _opts(**kw) -> VideoOptions:
    return VideoOptions(progress=False, **kw)


def _run(matter, source: Path, text: str, plate, **options):
    return process_video(matter, source, [parse_output(text)], plate, options=_opts(**options))


def _png_alpha(folder: Path) -> np.ndarray:
    return np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED)[..., 3] for p in sorted(folder.glob("*.png"))])


@pytest.mark.slow
def test_all_outputs_in_one_pass_match_the_api(fast_matter, clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=10, audio=True)
    outs = parse_save(
        f"rgba={tmp_path / 'o.mov'},rgba={tmp_path / 'o.webm'},rgba={tmp_path / 'frames'},"
        f"alpha={tmp_path / 'matte.mp4'},comp={tmp_path / 'comp.mp4'}"
    )
    result = process_video(fast_matter, clip.path, outs, clip.plate, options=_opts(batch_size=3, background="blue"))
    assert result.complete and result.frames == 10
    source = decode_all(clip.path)
    expected = [fast_matter.matte(f.image, clip.plate).alpha for f in source]
    reference = np.stack(expected)
    got = {
        "prores4444": np.stack([f.image[..., 3] for f in decode_all(tmp_path / "o.mov", alpha=True)]),
        "vp9": np.stack([f.image[..., 3] for f in decode_all(tmp_path / "o.webm", alpha=True)]),
        "png": _png_alpha(tmp_path / "frames"),
        "h264": np.stack([f.image[..., 0] for f in decode_all(tmp_path / "matte.mp4")]),
    }
    for name, alpha in got.items():
        err = np.abs(alpha / 255.0 - reference)
        max_tol, mean_tol = TOL[name]
        assert err.max() <= max_tol and err.mean() <= mean_tol, f"{name}: max {err.max():.4f} mean {err.mean():.4f}"
    source_audio = audio_seconds(clip.path)
    for name in ("o.mov", "o.webm", "matte.mp4", "comp.mp4"):
        frames = decode_all(tmp_path / name)
        assert [f.time for f in frames] == pytest.approx([f.time for f in source], abs=1e-3), name
        assert abs(audio_seconds(tmp_path / name) - source_audio) <= AAC_FRAME_S, name


def test_frame_count_and_timestamps_equal_the_input(clip_factory, tmp_path: Path) -> None:
    pts = [0, 300, 350, 900, 1000, 1800, 1850]  # variable frame rate
    clip = clip_factory("vfr.mkv", n=len(pts), pts=pts, time_base=Fraction(1, 1000))
    out = [parse_output(f"comp={tmp_path / 'out.mp4'}"), parse_output(f"rgba={tmp_path / 'out.mov'}")]
    result = process_video(FakeMatter(), clip.path, out, clip.plate, options=_opts(batch_size=2))
    assert result.frames == len(pts)
    for name in ("out.mp4", "out.mov"):
        assert [round(f.time * 1000) for f in decode_all(tmp_path / name)] == pts


def test_rotated_input_gives_upright_output(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory("phone.mp4", n=3, rotation=-90)  # stored sideways with rotate=90
    out = tmp_path / "out.mov"
    process_video(FakeMatter(), clip.path, [parse_output(f"rgba={out}")], clip.plate, options=_opts())
    info = probe(out)
    assert (info.height, info.width) == clip.frames[0].shape[:2] and info.rotation == 0
    rgb = decode_all(out)[1].image.astype(float)
    assert np.abs(rgb - clip.frames[1]).mean() < 8  # fgr = src for FakeMatter: the picture, upright


def test_start_end_trim_video_and_audio(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=24, rate=12, audio=True)  # 2 s
    out = tmp_path / "cut.mov"
    result = process_video(
        FakeMatter(), clip.path, [parse_output(f"rgba={out}")], clip.plate, options=_opts(start=0.5, end=1.5)
    )
    assert result.frames == 12
    frames = decode_all(out)
    assert frames[0].time == 0 and len(frames) == 12
    assert abs(audio_seconds(out) - 1.0) <= 2 * AAC_FRAME_S  # cut to the same second (whole AAC packets)


def test_plate_from_input_frames_and_from_a_clip(clip_factory, tmp_path: Path) -> None:
    empty = clip_factory("empty.mp4", n=5, static=True, noise=3.0)  # subject stands still in it
    clip = clip_factory(n=4)
    plate_clip = clip_factory("plate.mp4", n=7, noise=3.0)  # subject walks through: the median removes it
    from cleanplate.pipeline import load_plate

    plate = load_plate(plate_clip.path)
    assert np.abs(plate.astype(float) - clip.plate).mean() < 4
    plate = load_plate(None, source=empty.path, frame_range=(0, 3))
    assert plate.shape == clip.plate.shape
    result = process_video(
        FakeMatter(), clip.path, [parse_output(f"alpha={tmp_path / 'm.mkv'}")], plate_clip.path, options=_opts()
    )
    assert result.frames == 4


def test_plate_of_another_aspect_is_refused(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=2)
    with pytest.raises(PlateMismatchError, match="another aspect"):
        process_video(
            FakeMatter(), clip.path, [parse_output(f"rgba={tmp_path / 'o.mov'}")], clip.plate[:, :80], options=_opts()
        )
    assert not list(tmp_path.glob("o*.mov"))


def test_composite_over_a_looping_or_held_background_video(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=6)
    bg = clip_factory("bg.mkv", n=2, codec="ffv1", noise=40.0, seed=3)  # 2 distinct frames, lossless
    bg_frames = [f.image for f in decode_all(bg.path)]
    # A 6-frame input over the 2-frame background: frames 0,1,0,1,... (loop) or 0,1,1,1,... (hold)
    for loop, order in ((True, [0, 1, 0, 1, 0, 1]), (False, [0, 1, 1, 1, 1, 1])):
        folder = tmp_path / f"long_{loop}"
        alpha_zero = _ZeroAlpha()
        process_video(
            alpha_zero,
            clip.path,
            [parse_output(f"comp={folder}")],
            clip.plate,
            options=_opts(background=str(bg.path), background_loop=loop),
        )
        got = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.png"))]
        assert len(got) == 6
        for image, k in zip(got, order, strict=True):
            assert np.array_equal(image, bg_frames[k]), f"loop={loop}: expected background frame {k}"


class _ZeroAlpha(FakeMatter):
    def matte_tensor(self, src, bgr):
        alpha, fgr, err, ref = super().matte_tensor(src, bgr)
        return alpha * 0, fgr, err, ref


def test_batch_size_does_not_change_the_result(fast_matter, clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=5)
    for b in (1, 3):
        process_video(
            fast_matter,
            clip.path,
            [parse_output(f"rgba={tmp_path / f'b{b}'}")],
            clip.plate,
            options=_opts(batch_size=b),
        )
    a1, a3 = _png_alpha(tmp_path / "b1").astype(int), _png_alpha(tmp_path / "b3").astype(int)
    assert np.abs(a1 - a3).max() <= 1


def test_decoding_never_runs_far_ahead(clip_factory, tmp_path: Path, monkeypatch) -> None:
    """Bounded queues: memory stays flat because the decoder waits for a slow model."""
    clip = clip_factory(n=16)
    readers: list[VideoReader] = []

    class Tracked(VideoReader):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            readers.append(self)

    monkeypatch.setattr(pipeline_video, "VideoReader", Tracked)
    ahead: list[int] = []
    opts = _opts(batch_size=2, queue_batches=2, on_batch=lambda done: ahead.append(readers[0].decoded - done))
    process_video(
        FakeMatter(delay=0.05), clip.path, [parse_output(f"alpha={tmp_path / 'm.mkv'}")], clip.plate, options=opts
    )
    # queue (2 batches) + the batch being built + one in the consumer's hands
    assert max(ahead) <= (2 + 2) * 2, ahead


def test_ctrl_c_keeps_a_playable_partial_file(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=12, audio=True)

    def interrupt(done: int) -> None:
        if done >= 4:
            raise KeyboardInterrupt

    outs = [parse_output(f"rgba={tmp_path / 'o.mov'}"), parse_output(f"comp={tmp_path / 'c.mp4'}")]
    with pytest.raises(VideoInterrupted) as info:
        process_video(FakeMatter(), clip.path, outs, clip.plate, options=_opts(batch_size=2, on_batch=interrupt))
    result = info.value.result
    assert not result.complete and result.frames == 4
    assert result.outputs == [tmp_path / "o.partial.mov", tmp_path / "c.partial.mp4"]
    assert not (tmp_path / "o.mov").exists() and not (tmp_path / "c.mp4").exists()
    for path in result.outputs:
        assert len(decode_all(path)) == 4
        assert audio_seconds(path) is not None


def test_a_crash_mid_way_keeps_partial_output_and_reports_once(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=8)

    class Boom(FakeMatter):
        def matte_tensor(self, src, bgr):
            if self.calls >= 2:
                raise RuntimeError("model exploded")
            return super().matte_tensor(src, bgr)

    with pytest.raises(RuntimeError, match="model exploded") as info:
        process_video(Boom(), clip.path, [parse_output(f"rgba={tmp_path / 'o.webm'}")], clip.plate, options=_opts())
    partial = info.value.partial
    assert partial.outputs == [tmp_path / "o.partial.webm"] and partial.frames == 2
    assert len(decode_all(partial.outputs[0])) == 2


def test_writer_failure_in_a_thread_reaches_the_caller(clip_factory, tmp_path: Path, monkeypatch) -> None:
    clip = clip_factory(n=8)
    from cleanplate.io import video_writer as io_video

    real_write = io_video.VideoFileWriter.write

    def failing_write(self, image, pts):
        if self.frames >= 3:
            raise OutputError("disk full while writing (simulated)")
        real_write(self, image, pts)

    monkeypatch.setattr(io_video.VideoFileWriter, "write", failing_write)
    with pytest.raises(OutputError, match="simulated"):
        process_video(
            FakeMatter(), clip.path, [parse_output(f"rgba={tmp_path / 'o.mov'}")], clip.plate, options=_opts()
        )
    assert not (tmp_path / "o.mov").exists()


def test_bad_requests_fail_before_any_work(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=2)
    existing = tmp_path / "exists.mov"
    existing.write_bytes(b"x")
    calls = FakeMatter()
    with pytest.raises(OutputError, match="already exists"):
        process_video(calls, clip.path, [parse_output(f"rgba={existing}")], clip.plate, options=_opts())
    with pytest.raises(OutputError, match="is the input"):
        process_video(calls, clip.path, [parse_output(f"comp={clip.path}")], clip.plate, options=_opts(force=True))
    with pytest.raises(InputError, match="past the end"):
        process_video(
            calls, clip.path, [parse_output(f"rgba={tmp_path / 'o.mov'}")], clip.plate, options=_opts(start=9)
        )
    assert calls.calls == 0
    assert not (tmp_path / "o.mov").exists() and not list(tmp_path.glob("o.partial*"))
