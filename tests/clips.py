"""Short synthetic clips for the video, pipeline and live tests, built at test time.

A ground-truth subject (VideoMatte fgr + alpha from tests/assets/data, resized small) slides over a
background photo with a little sensor noise; an optional sine soundtrack (AAC) lasts as long as
the video. The plate is the background itself, so the true matte of every frame is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

SUBJECT = "vm_train_00001"
BACKGROUND = "kodak_kodim01.jpg"


@dataclass
class Clip:
    path: Path
    plate: np.ndarray  # H×W×3 uint8, upright
    alphas: list[np.ndarray]  # true alpha per frame, float32 H×W (upright)
    frames: list[np.ndarray]  # the RGB frames as encoded (before compression), upright
    pts: list[int]
    time_base: Fraction
    audio_seconds: float | None

    @property
    def times(self) -> list[float]:
        return [float(p * self.time_base) for p in self.pts]


@lru_cache(maxsize=8)
def _subject(data_dir: Path, height: int) -> tuple[np.ndarray, np.ndarray]:
    fgr = Image.open(data_dir / "train" / "gt" / f"{SUBJECT}_fgr.png").convert("RGB")
    pha = Image.open(data_dir / "train" / "gt" / f"{SUBJECT}_pha.png").convert("L")
    box = pha.point(lambda v: 255 if v > 10 else 0).getbbox()  # ignore faint stray pixels
    fgr, pha = fgr.crop(box), pha.crop(box)
    width = max(2, round(fgr.width * height / fgr.height))
    fgr = np.asarray(fgr.resize((width, height), Image.Resampling.LANCZOS), np.float32) / 255
    pha = np.asarray(pha.resize((width, height), Image.Resampling.LANCZOS), np.float32) / 255
    return fgr, pha


@lru_cache(maxsize=8)
def background(data_dir: Path, size: tuple[int, int], name: str = BACKGROUND) -> np.ndarray:
    h, w = size
    img = Image.open(data_dir / "train" / "backgrounds" / name).convert("RGB")
    return np.asarray(img.resize((w, h), Image.Resampling.LANCZOS), np.uint8)


def _drifted(bg: np.ndarray, i: int, drift: float) -> np.ndarray:
    """The background as a handheld camera sees it at frame ``i``: shifted and slightly rotated."""
    import cv2

    h, w = bg.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.15 * drift * i, 1.0)
    m[:, 2] += (drift * i, 0.5 * drift * i)
    return cv2.warpAffine(bg, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def render(
    data_dir: Path,
    size: tuple[int, int],
    n: int,
    *,
    static: bool = False,
    seed: int = 0,
    noise: float = 3.0,
    drift: float = 0.0,
    exposure: float = 0.0,
):
    """Frames (uint8) and true alphas of a subject crossing (or standing in) a background.

    ``drift``: camera pan in pixels per frame; ``exposure``: brightness change per frame (0.02 = +2 %).
    """
    h, w = size
    bg0 = background(data_dir, size).astype(np.float32) / 255
    fgr, pha = _subject(data_dir, int(h * 0.8))
    sh, sw = pha.shape
    rng = np.random.default_rng(seed)
    frames, alphas = [], []
    for i in range(n):
        bg = _drifted(bg0, i, drift) if drift else bg0
        bg = bg * (1 + exposure * i) if exposure else bg
        x = (w - sw) // 2 if static else int(round((w - sw) * (0.15 + 0.7 * i / max(1, n - 1))))
        y = h - sh
        alpha = np.zeros((h, w), np.float32)
        fg = np.zeros((h, w, 3), np.float32)
        alpha[y : y + sh, x : x + sw] = pha
        fg[y : y + sh, x : x + sw] = fgr
        img = fg * alpha[..., None] + bg * (1 - alpha[..., None])
        img = img * 255 + rng.normal(0, noise, img.shape)
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
        alphas.append(alpha)
    return frames, alphas


def make_clip(
    path: Path,
    data_dir: Path,
    *,
    n: int = 12,
    size: tuple[int, int] = (96, 128),
    rate: int = 12,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio: bool = False,
    rotation: int = 0,
    static: bool = False,
    codec: str = "libx264",
    seed: int = 0,
    noise: float = 3.0,
    drift: float = 0.0,
    exposure: float = 0.0,
) -> Clip:
    """Encode a clip to ``path``; ``pts`` (in ``time_base``) gives a variable frame rate.

    ``rotation`` stores a display matrix (counter-clockwise degrees, as FFmpeg reports it): the
    frames are stored turned the other way, so a reader that honours it gets ``frames`` back.
    """
    frames, alphas = render(data_dir, size, n, static=static, seed=seed, noise=noise, drift=drift, exposure=exposure)
    time_base = time_base or Fraction(1, rate * 100)
    pts = pts or [i * 100 for i in range(n)]
    step = float(time_base) * (pts[1] - pts[0] if len(pts) > 1 else 100)
    duration = float(pts[-1] * time_base) + step
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, options={"crf": "12"} if codec == "libx264" else {})
        stored = np.rot90(frames[0], -rotation // 90) if rotation else frames[0]
        stream.width, stream.height = stored.shape[1], stored.shape[0]
        stream.pix_fmt = "yuv420p" if codec == "libx264" else stream.pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        a_stream = None
        if audio:
            a_stream = out.add_stream("aac", rate=44100, layout="mono")
        for img, p in zip(frames, pts, strict=True):
            stored = np.ascontiguousarray(np.rot90(img, -rotation // 90)) if rotation else img
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts, frame.time_base = p, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if a_stream is not None:
            sr = 44100
            t = np.arange(int(round(duration * sr))) / sr
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, len(tone), 4096):
                chunk = tone[None, start : start + 4096]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = sr, start, Fraction(1, sr)
                for packet in a_stream.encode(af):
                    out.mux(packet)
            for packet in a_stream.encode():
                out.mux(packet)
    return Clip(path, background(data_dir, size), alphas, frames, list(pts), time_base, duration if audio else None)


def decode_all(path: Path, *, alpha: bool = False) -> list:
    """Every frame of ``path`` through the library reader (RGBA with ``alpha``)."""
    from cleanplate.io.video_reader import VideoReader

    with VideoReader(path, alpha=alpha) as reader:
        return list(reader)


def audio_seconds(path: Path) -> float | None:
    """Decoded audio duration (samples / rate) of the first audio stream, None without audio."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


# --------------------------------------------------------------------------------------------
# fixtures (registered for every test folder by tests/conftest.py)
# --------------------------------------------------------------------------------------------


@pytest.fixture
def clip_factory(tmp_path: Path, data_dir: Path):
    """``make(name, **make_clip kwargs)`` → :class:`Clip` written under tmp_path."""

    def make(name: str = "input.mp4", **kwargs) -> Clip:
        return make_clip(tmp_path / name, data_dir, **kwargs)

    return make


@pytest.fixture(scope="session")
def fast_matter(seed7_ckpt: Path):
    """MattingRefine mobilenetv2 with the reference random weights, tuned for speed on tiny frames.

    Random weights give a noisy but deterministic matte: fine for plumbing (frames, timestamps,
    codecs), not for quality.
    """
    import cleanplate

    return cleanplate.load(
        seed7_ckpt,
        device="cpu",
        backbone_scale=0.25,
        refine_sample_pixels=2048,
    )


class FakeMatter:
    """A stand-in model with a known matte: alpha = 1 where |src − bgr| > 0.1 (mean over RGB), fgr = src.

    Fast and exact, so pipeline tests can check composites and timing logic bit for bit.
    """

    device = "cpu"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0

    def matte_tensor(self, src, bgr):
        import time

        import torch

        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        alpha = ((src.float() - bgr.float()).abs().mean(1, keepdim=True) > 0.1).float()
        fgr = src.float()
        zeros = torch.zeros_like(alpha)
        return alpha, fgr, zeros, zeros
