"""``cleanplate live`` headless: a video file stands in for the camera, a file is the sink."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from cleanplate.cli.app import main
from cleanplate.errors import InputError, MissingDependencyError, OutputError
from cleanplate.io.formats import parse_output
from cleanplate.live import FileSink, FpsMeter, LiveOptions, LiveSession, draw_text, open_source
from cleanplate.live.sinks import PreviewWindow, VirtualCamera
from tests.clips import FakeMatter, decode_all


def _session(clip, tmp_path: Path, *, plate=None, trigger_at: int | None = None, signal_it=False, **options):
    source = open_source(str(clip.path))
    sink = FileSink(parse_output(f"comp={tmp_path / 'rec.mp4'}"))
    session = LiveSession(FakeMatter(), source, files=[sink], plate=plate, options=LiveOptions(**options))
    if trigger_at is not None:  # what 'p' / SIGUSR1 does, at a known frame
        read = source.read

        def read_and_trigger():
            item = read()
            if session.stats.seen + 1 == trigger_at:
                if signal_it:
                    os.kill(os.getpid(), signal.SIGUSR1)
                else:
                    session.request_plate()
            return item

        source.read = read_and_trigger
    return session


def test_countdown_capture_then_matting(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=12, rate=12, static=False)
    # 0.25 s countdown at 12 fps = 3 frames, then 2 frames make the plate, then 7 frames are matted
    stats = _session(clip, tmp_path, plate_delay=0.25, plate_frames=2).run()
    assert (stats.seen, stats.plates, stats.frames) == (12, 1, 7)
    recorded = decode_all(tmp_path / "rec.mp4")
    assert len(recorded) == 7
    steps = np.diff([f.time for f in recorded])
    assert steps == pytest.approx(1 / 12, abs=2e-3)  # the source's timing, not the processing speed


def test_recapture_restarts_the_countdown(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=12)
    stats = _session(clip, tmp_path, plate=clip.plate, trigger_at=5, plate_delay=0.0, plate_frames=1).run()
    assert stats.plates == 2  # the given plate, then the re-captured one
    assert stats.frames == 11  # one frame went into the new plate


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_sigusr1_recaptures_the_plate_headless(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=8)
    stats = _session(
        clip, tmp_path, plate=clip.plate, trigger_at=3, signal_it=True, plate_delay=0.0, plate_frames=1
    ).run()
    assert stats.plates == 2
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)  # handler removed afterwards


def test_max_frames_and_given_plate(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=12)
    stats = _session(clip, tmp_path, plate=clip.plate, max_frames=4).run()
    assert stats.frames == 4 and stats.outputs == [tmp_path / "rec.mp4"]
    assert len(decode_all(tmp_path / "rec.mp4")) == 4


def test_background_is_what_shows_where_alpha_is_zero(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=3)
    source = open_source(str(clip.path))
    sink = FileSink(parse_output(f"comp={tmp_path / 'frames'}"))
    # the plate is the frame's own background, the fake model keys the subject: the rest is red
    session = LiveSession(
        FakeMatter(), source, files=[sink], plate=clip.plate, options=LiveOptions(backgrounds=["red"], max_frames=1)
    )
    session.run()
    import cv2

    image = cv2.cvtColor(cv2.imread(str(tmp_path / "frames" / "000000.png")), cv2.COLOR_BGR2RGB)
    corner = image[:8, :8].reshape(-1, 3)
    assert (np.abs(corner.astype(int) - [255, 0, 0]).max(axis=1) <= 2).mean() > 0.9


def test_overlay_and_fps_meter() -> None:
    frame = np.zeros((60, 80, 3), np.uint8)
    drawn = draw_text(frame, "12.3 fps", corner="top-right")
    assert drawn[:20, 40:].any() and not drawn[40:, :20].any() and not frame.any()
    meter = FpsMeter()
    for i in range(10):
        meter.tick(i * 0.04)
    assert meter.fps == pytest.approx(25.0)


def test_preview_and_virtual_camera_fail_with_a_hint(monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(OutputError, match="no display"):
        PreviewWindow()
    import importlib.util

    if importlib.util.find_spec("pyvirtualcam") is None:
        with pytest.raises(MissingDependencyError, match=r"pip install 'cleanplate\[live\]'"):
            VirtualCamera(64, 48)


def test_sources_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_source("/dev/video97")
    with pytest.raises(InputError, match="no such file, camera or URL"):
        open_source(str(tmp_path / "nothing.mp4"))


def test_cli_headless_file_to_file(clip_factory, tmp_path: Path, seed7_ckpt: Path, capsys) -> None:
    clip = clip_factory(n=8)
    weights = seed7_ckpt
    out = tmp_path / "live.mp4"
    args = [str(clip.path), "--no-preview", "-o", str(out), "--plate-delay", "0", "--plate-frames", "0:2"]
    args += ["--max-frames", "3", "-b", "blue", "-m", str(weights), "--sample-pixels", "2048", "--device", "cpu"]
    with pytest.raises(SystemExit) as info:
        main(["live", *args])
    err = capsys.readouterr().err
    assert info.value.code == 0, err
    assert "3 frames matted" in err and "warning" not in err
    assert len(decode_all(out)) == 3


def test_cli_live_aligns_matches_colour_smooths_and_reads_a_bare_count_as_a_range(clip_factory, tmp_path, capsys):
    # --plate-frames has one meaning in video and live (A:B); a bare count is the old spelling of 0:N
    clip = clip_factory(n=8, drift=1.0)
    out = tmp_path / "live.mp4"
    args = [str(clip.path), "--no-preview", "-o", str(out), "--plate-delay", "0", "--plate-frames", "2"]
    args += ["--max-frames", "3", "--align", "--match-color", "--smooth", "-m", "classical", "--device", "cpu"]
    with pytest.raises(SystemExit) as info:
        main(["live", *args])
    err = capsys.readouterr().err
    assert info.value.code == 0, err
    assert "warning: --plate-frames 2 is read as --plate-frames 0:2" in err
    assert len(decode_all(out)) == 3


def test_cli_headless_without_a_sink_is_refused(clip_factory, capsys, monkeypatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    clip = clip_factory(n=2)
    with pytest.raises(SystemExit) as info:
        main(["live", str(clip.path)])
    assert info.value.code == 2 and "nothing to show" in capsys.readouterr().err


def test_live_applies_the_matte_controls_and_records_the_shadow(clip_factory, tmp_path: Path) -> None:
    """The same per-frame step: a garbage mask over everything empties the live matte."""
    import cv2

    from cleanplate.pipeline.controls import MatteControls

    clip = clip_factory(n=4)
    mask = tmp_path / "all.png"
    cv2.imwrite(str(mask), np.full(clip.plate.shape[:2], 255, np.uint8))
    sinks = [FileSink(parse_output(f"alpha={tmp_path / 'a'}/")), FileSink(parse_output(f"shadow={tmp_path / 's'}/"))]
    options = LiveOptions(max_frames=2, controls=MatteControls(garbage=mask), shadow=True)
    stats = LiveSession(FakeMatter(), open_source(str(clip.path)), files=sinks, plate=clip.plate, options=options).run()
    assert stats.frames == 2
    alphas = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((tmp_path / "a").glob("*.png"))]
    assert len(alphas) == 2 and all(a.max() == 0 for a in alphas)
    assert len(list((tmp_path / "s").glob("*.png"))) == 2


def test_cli_live_keep_shadow_and_choke(clip_factory, tmp_path, capsys) -> None:
    clip = clip_factory(n=4)
    out = tmp_path / "live.mp4"
    args = [str(clip.path), "--no-preview", "-o", str(out), "--plate-delay", "0", "--plate-frames", "0:2"]
    args += ["--max-frames", "2", "--choke", "1", "--feather", "1", "--keep-shadow"]
    args += ["-m", "classical", "--device", "cpu"]
    with pytest.raises(SystemExit) as info:
        main(["live", *args])
    err = capsys.readouterr().err
    assert info.value.code == 0, err
    assert len(decode_all(out)) == 2
