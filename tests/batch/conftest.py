"""Tiny inputs for the batch tests: images with a plate, and a clip with a keyframe every 4 frames."""

from __future__ import annotations

import json
import sqlite3
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.clips import background, render


def scene(h: int = 48, w: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(frame, plate): a disc over a gradient plate with a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    plate = np.stack([x * 255 / w, y * 255 / h, np.full((h, w), 90.0)], axis=2)
    plate = np.clip(plate + rng.normal(0, 2, plate.shape), 0, 255).astype(np.uint8)
    src = plate.copy()
    src[(y - h / 2) ** 2 + (x - w / 2 - 2 * seed) ** 2 < (min(h, w) / 4) ** 2] = (230, 40, 200)
    return src, plate


def make_shots(folder: Path, n: int = 4, names: list[str] | None = None) -> Path:
    """``folder/NAME.png`` frames and one ``folder/plate.png``; returns the plate path."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"shot{i}.png" for i in range(n)]
    plate = None
    for i, name in enumerate(names):
        src, plate = scene(seed=i)
        Image.fromarray(src).save(folder / name)
    Image.fromarray(plate).save(folder / "plate.png")
    return folder / "plate.png"


def make_gop_clip(path: Path, data_dir: Path, *, n: int = 12, gop: int = 4, size=(64, 96), audio: bool = True):
    """An H.264 clip (B-frames on) with a keyframe every ``gop`` frames and an AAC tone; returns the plate."""
    frames, _ = render(data_dir, size, n)
    rate = 12
    tb = Fraction(1, rate * 100)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "12", "g": str(gop), "keyint_min": str(gop)})
        stream.width, stream.height, stream.pix_fmt = size[1], size[0], "yuv420p"
        stream.time_base = tb
        stream.codec_context.time_base = tb
        a_stream = out.add_stream("aac", rate=44100, layout="mono") if audio else None
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i * 100, tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if a_stream is not None:
            sr = 44100
            t = np.arange(int(n / rate * sr)) / sr
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(tone), 4096):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[None, start : start + 4096]), "flt", "mono")
                af.sample_rate, af.pts, af.time_base = sr, start, Fraction(1, sr)
                for packet in a_stream.encode(af):
                    out.mux(packet)
            for packet in a_stream.encode():
                out.mux(packet)
    return background(data_dir, size)


def ledger_rows(outdir: Path) -> dict[str, dict]:
    """The ledger's items table, read the way a monitor would (while a run may be writing)."""
    db = sqlite3.connect(outdir / ".cleanplate" / "ledger.sqlite", timeout=10)
    try:
        rows = db.execute("SELECT id, state, attempts, error, outputs FROM items").fetchall()
    finally:
        db.close()
    return {r[0]: {"state": r[1], "attempts": r[2], "error": r[3], "outputs": json.loads(r[4] or "[]")} for r in rows}


def video_summary(path: Path) -> dict:
    """Frames (RGBA), their pts and time base, and the audio packets of a video file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = [(f.pts, f.to_ndarray(format="rgba")) for f in c.decode(v)]
        tb = v.time_base
    with av.open(str(path)) as c:
        audio_streams = len(c.streams.audio)
        audio = [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size] if audio_streams else []
    return {
        "pts": [p for p, _ in frames],
        "images": [f for _, f in frames],
        "tb": tb,
        "audio": audio,
        "audio_streams": audio_streams,
    }


@pytest.fixture
def shots(tmp_path: Path) -> tuple[Path, Path]:
    """(folder of 4 images, plate)."""
    plate = make_shots(tmp_path / "shots")
    return tmp_path / "shots", plate
