"""``cleanplate video``: the happy path, one clear line for every bad input, Ctrl-C in a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cleanplate.cli.app import main
from tests.clips import audio_seconds, decode_all

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_args(seed7_ckpt: Path) -> list[str]:
    weights = seed7_ckpt
    return ["-m", str(weights), "--backbone-scale", "1/4", "--sample-pixels", "2048", "--device", "cpu"]


def _cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(["video", *args])
    return info.value.code, capsys.readouterr().err


def test_several_outputs_one_pass(clip_factory, tmp_path: Path, model_args, capsys) -> None:
    clip = clip_factory(n=6, audio=True)
    plate = tmp_path / "plate.png"
    from PIL import Image

    Image.fromarray(clip.plate).save(plate)
    out = tmp_path / "out.mov"
    code, err = _cli(
        [
            str(clip.path),
            "--plate",
            str(plate),
            "-o",
            str(out),
            "--save",
            f"comp={tmp_path / 'c.mp4'}",
            "-q",
            *model_args,
        ],
        capsys,
    )
    assert code == 0, err
    assert len(decode_all(out)) == 6 and len(decode_all(tmp_path / "c.mp4")) == 6
    assert audio_seconds(out) == pytest.approx(audio_seconds(clip.path), abs=1024 / 44100)


def test_summary_line_and_plate_frames(clip_factory, tmp_path: Path, model_args, capsys) -> None:
    clip = clip_factory(n=4)
    code, err = _cli(
        [str(clip.path), "--plate-frames", "0:3", "-o", f"alpha={tmp_path / 'm.mkv'}", "--smooth", *model_args], capsys
    )
    assert code == 0, err
    assert err.strip().splitlines()[-1].startswith("cleanplate: wrote 4 frames")


def test_a_shifted_plate_is_one_warning_line_naming_the_input(clip_factory, tmp_path: Path, model_args, capsys) -> None:
    import cv2
    from PIL import Image

    clip = clip_factory(n=2, size=(192, 256), static=True, noise=1.0)
    plate = tmp_path / "plate.png"
    Image.fromarray(cv2.warpAffine(clip.plate, np.float32([[1, 0, -8], [0, 1, 0]]), (256, 192))).save(plate)
    code, err = _cli([str(clip.path), "--plate", str(plate), "-o", str(tmp_path / "m.mkv"), "-q", *model_args], capsys)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "looks shifted" in line]
    assert len(lines) == 1 and lines[0].startswith(f"cleanplate: warning: {clip.path}: the plate looks shifted"), err
    assert "Warning" not in err  # not Python's own warning format


def _bad_inputs(tmp_path: Path, clip) -> dict[str, tuple[list[str], str]]:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 3000)
    unknown = tmp_path / "unknown.mkv"
    mkv = clip.path.with_name("ok.mkv")
    data = mkv.read_bytes()
    unknown.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_MPEG4/ISO/XYZ"))
    sound = tmp_path / "sound.m4a"
    import av

    with av.open(str(sound), "w") as out:
        stream = out.add_stream("aac", rate=44100, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), format="flt", layout="mono")
        frame.sample_rate, frame.pts = 44100, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    wide = tmp_path / "wide.png"
    from PIL import Image

    Image.fromarray(np.zeros((50, 200, 3), np.uint8)).save(wide)
    existing = tmp_path / "exists.mov"
    existing.write_bytes(b"keep me")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    src = str(clip.path)
    frames = ["--plate-frames", "0:2"]
    return {
        "missing input": ([str(tmp_path / "nope.mp4"), *frames, "-o", "x.mov"], "no such file"),
        "corrupt input": ([str(garbage), *frames, "-o", "x.mov"], "not a video file, or corrupt"),
        "no video stream": ([str(sound), *frames, "-o", "x.mov"], "no video stream"),
        "unsupported codec": ([str(unknown), *frames, "-o", "x.mov"], "unsupported video codec"),
        "plate aspect": ([src, "--plate", str(wide), "-o", "x.mov"], "another aspect ratio"),
        "missing plate": ([src, "--plate", str(tmp_path / "none.png"), "-o", "x.mov"], "no such file"),
        "existing output": ([src, *frames, "-o", str(existing)], "already exists"),
        "unwritable output": ([src, *frames, "-o", str(blocker / "x.mov")], "is a file"),
        "alpha in mp4": ([src, *frames, "-o", f"rgba={tmp_path / 'x.mp4'}"], "cannot carry alpha"),
        "start past the end": ([src, *frames, "-o", "x.mov", "--start", "60"], "past the end"),
        "bad background": ([src, *frames, "-o", "comp=x.mp4", "-b", "nocolour"], "neither a colour"),
        "two plates": ([src, *frames, "--plate", str(wide), "-o", "x.mov"], "exactly one of"),
        "bad time": ([src, *frames, "-o", "x.mov", "--start", "1:75"], "is not a time"),
    }


def test_every_bad_input_is_one_line_without_traceback(
    clip_factory, tmp_path: Path, model_args, capsys, monkeypatch
) -> None:
    clip = clip_factory(n=3)
    clip_factory("ok.mkv", n=2)
    monkeypatch.chdir(tmp_path)
    for name, (args, message) in _bad_inputs(tmp_path, clip).items():
        code, err = _cli([*args, *model_args], capsys)
        lines = [line for line in err.strip().splitlines() if line]
        assert code == 2, f"{name}: exit {code}\n{err}"
        assert "Traceback" not in err, f"{name}:\n{err}"
        assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("Try ")), f"{name}: {err}"
        assert message in err, f"{name}: {err}"
        leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("x.", ".x.", "x.partial")))
        assert not leftovers, f"{name}: left {leftovers}"
    assert (tmp_path / "exists.mov").read_bytes() == b"keep me"


@pytest.mark.slow
def test_ctrl_c_in_a_real_process_leaves_a_playable_file(clip_factory, tmp_path: Path, model_args) -> None:
    clip = clip_factory(n=48, rate=12, audio=True)
    out = tmp_path / "out.mov"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "cleanplate", "video", str(clip.path), "--plate-frames", "0:2", "-o", str(out)]
    proc = subprocess.Popen([*cmd, *model_args], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if list(tmp_path.glob(".out.tmp-*.mov")):  # the first frame is being encoded
            time.sleep(0.5)
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "interrupted after" in last and "out.partial.mov" in last, err
    assert "Traceback" not in err
    partial = tmp_path / "out.partial.mov"
    assert partial.exists() and not out.exists()
    frames = decode_all(partial)
    assert 1 <= len(frames) < 48
    assert not list(tmp_path.glob(".out.tmp-*"))
