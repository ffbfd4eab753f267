"""VideoReader: exact frame count, timestamps (VFR too), rotation, seeking, one-line errors."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from cleanplate.errors import InputError
from cleanplate.io.video_reader import VideoReader, probe, upright
from tests.clips import decode_all

# H.264 at crf 12 on 3-level noise: the decoded frames stay within a few levels of what was encoded.
CODEC_MEAN_TOL = 6.0


def test_frame_count_and_timestamps_exact(clip_factory) -> None:
    clip = clip_factory(n=13, rate=12)
    frames = decode_all(clip.path)
    assert len(frames) == 13
    # the mp4 muxer picks its own time base (here 1/19200 for 1/1200), so compare times
    assert [f.time for f in frames] == pytest.approx(clip.times, abs=1e-9)
    assert [f.index for f in frames] == list(range(13))
    err = np.abs(frames[5].image.astype(float) - clip.frames[5]).mean()
    assert err < CODEC_MEAN_TOL, err


def test_variable_frame_rate_timestamps_kept(clip_factory) -> None:
    pts = [0, 400, 500, 1300, 1350, 2000, 2900, 3000]  # 1/1000 s: irregular gaps
    clip = clip_factory("vfr.mkv", n=len(pts), pts=pts, time_base=Fraction(1, 1000))
    frames = decode_all(clip.path)
    assert [f.pts for f in frames] == pts
    assert [f.time for f in frames] == pytest.approx([p / 1000 for p in pts])


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_rotation_metadata_gives_upright_frames(clip_factory, rotation: int) -> None:
    # rotation -90 is what phones store as the tag rotate=90 (turn clockwise for display)
    clip = clip_factory(f"rot{rotation}.mp4", n=3, rotation=rotation)
    info = probe(clip.path)
    h, w = clip.frames[0].shape[:2]
    assert (info.height, info.width) == (h, w)
    with av.open(str(clip.path)) as container:  # stored sideways
        stream = container.streams.video[0]
        stored = (stream.codec_context.height, stream.codec_context.width)
    assert stored == ((w, h) if rotation % 180 else (h, w))
    frames = decode_all(clip.path)
    assert frames[0].image.shape[:2] == (h, w)
    err = np.abs(frames[0].image.astype(float) - clip.frames[0]).mean()
    assert err < CODEC_MEAN_TOL, f"frames not turned upright (mean error {err:.1f})"


def test_upright_turns_counter_clockwise() -> None:
    image = np.zeros((2, 3, 1), np.uint8)
    image[0, 2] = 1  # top-right corner
    assert upright(image, 90)[0, 0, 0] == 1  # a quarter turn counter-clockwise brings it to top-left


def test_start_end_seek_to_exact_frames(clip_factory) -> None:
    clip = clip_factory(n=16, rate=12)
    times = clip.times
    with VideoReader(clip.path, start=0.5, end=1.0) as reader:
        got = [f.pts for f in reader]
    got_times = [float(p * probe(clip.path).time_base) for p in got]
    want = [t for t in times if 0.5 - 1e-4 <= t < 1.0 - 1e-4]
    assert got_times == pytest.approx(want) and len(got) == 6


def test_frame_range_by_index(clip_factory) -> None:
    clip = clip_factory(n=10)
    with VideoReader(clip.path, frame_range=(2, 5)) as reader:
        assert [f.time for f in reader] == pytest.approx(clip.times[2:5])


def test_alpha_from_webm_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "a.webm"
    alpha = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libvpx-vp9", rate=10, options={"crf": "10", "b": "0"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuva420p"
        for i in range(2):
            rgba = np.dstack([np.full((48, 64, 3), 90, np.uint8), alpha])
            frame = av.VideoFrame.from_ndarray(rgba, format="rgba")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert probe(path).alpha
    frames = decode_all(path, alpha=True)
    assert len(frames) == 2 and frames[0].image.shape == (48, 64, 4)
    assert np.abs(frames[0].image[..., 3].astype(int) - alpha).max() <= 4


# ---------------------------------------------------------------------------------------- errors


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        probe(tmp_path / "nope.mp4")


def test_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "garbage.mp4"
    path.write_bytes(b"\x00\x01" * 4000)
    with pytest.raises(InputError, match="not a video file, or corrupt"):
        probe(path)


def test_no_video_stream(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no video stream .*audio only"):
        probe(_audio_only(tmp_path / "sound.m4a"))


def test_unsupported_codec(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory("ok.mkv", n=2)
    data = clip.path.read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    bad = tmp_path / "unknown_codec.mkv"
    bad.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/XYZ"))  # a codec id FFmpeg does not know
    with pytest.raises(InputError, match="unsupported video codec"):
        probe(bad)


def test_truncated_file(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=6)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.path.read_bytes()[:2000])  # the index (moov) is at the end: gone
    with pytest.raises(InputError, match="corrupt"):
        probe(cut)


def test_bad_range(clip_factory) -> None:
    clip = clip_factory(n=2)
    with pytest.raises(InputError, match="after --start"):
        VideoReader(clip.path, start=2.0, end=1.0)


def test_the_old_io_video_path_still_reads_and_writes() -> None:
    from cleanplate.io import video, video_reader, video_writer

    assert video.VideoReader is video_reader.VideoReader and video.open_writer is video_writer.open_writer
