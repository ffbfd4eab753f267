"""The live loop: capture a plate (countdown), then matte every frame and send it to the sinks.

States: ``countdown`` (the user steps out; frames pass through with a message) → ``capture``
(frames A..B-1 after the countdown are median-combined into the plate) → ``matting``, each frame
through the per-frame step shared with ``cleanplate video`` (:class:`~cleanplate.pipeline.frame.FrameStep`:
alignment, colour match, matte, smoothing, render). 'p' in the preview window (or SIGUSR1 when
headless) restarts the countdown to re-capture the plate; 'b' cycles backgrounds; 'q'/Esc quits.
Countdown time follows the source's clock, so a file source behaves exactly like a camera filmed
at that speed, deterministically.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..pipeline.background import Background
from ..pipeline.controls import MatteControls
from ..pipeline.frame import FrameOptions, FrameStep
from ..pipeline.render import to_device
from ..plate.load import temporal_median
from .sinks import FileSink
from .sources import FrameSource


@dataclass
class LiveOptions:
    plate_delay: float = 3.0  # seconds of countdown before the plate is captured
    plate_frames: int = 5  # frames median-combined into the plate
    plate_skip: int = 0  # frames skipped after the countdown before those (--plate-frames A:B: A, B - A)
    backgrounds: Sequence[str] = ("blur",)  # 'b' cycles through them; the first is used at start
    show_fps: bool = True  # fps counter drawn on the preview
    max_frames: int | None = None  # stop after this many matted frames
    smooth: float = 0.0
    match_color: bool = False
    align: bool = False  # per-frame plate alignment (a handheld or drifting camera)
    controls: MatteControls = field(default_factory=MatteControls)  # choke, feather, levels, garbage/holdout
    keep_shadow: float = 0.0  # multiply the cast shadow into the composite
    shadow: bool = False  # compute the shadow layer (a shadow recording)

    @property
    def frame(self) -> FrameOptions:
        """The per-frame step's options."""
        return FrameOptions.of(self)


@dataclass
class LiveStats:
    frames: int = 0  # frames matted
    seen: int = 0  # frames read from the source
    plates: int = 0  # plates captured
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)
    interrupted: bool = False

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class FpsMeter:
    """Exponential moving average of the frame rate."""

    def __init__(self, momentum: float = 0.9) -> None:
        self.momentum = momentum
        self.fps = 0.0
        self._last: float | None = None

    def tick(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        if self._last is not None and now > self._last:
            inst = 1.0 / (now - self._last)
            self.fps = inst if self.fps == 0 else self.momentum * self.fps + (1 - self.momentum) * inst
        self._last = now
        return self.fps


def draw_text(frame: np.ndarray, text: str, *, corner: str = "top-left", scale: float | None = None) -> np.ndarray:
    """``frame`` with ``text`` drawn in a readable box (a copy; RGB uint8)."""
    out = np.ascontiguousarray(frame).copy()
    h, w = out.shape[:2]
    scale = scale or max(0.35, min(w, h) / 600)
    thickness = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, th // 3)
    x = pad if corner.endswith("left") else max(0, w - tw - 2 * pad)
    y = pad if corner.startswith("top") else max(0, h - th - base - 2 * pad)
    cv2.rectangle(out, (x, y), (x + tw + 2 * pad, y + th + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(out, text, (x + pad, y + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness)
    return out


class LiveSession:
    """Runs the loop for one source and a set of sinks (preview, virtual camera, files)."""

    def __init__(
        self,
        matter: Any,
        source: FrameSource,
        *,
        preview: Any = None,
        vcam: Any = None,
        files: Sequence[FileSink] = (),
        plate: np.ndarray | None = None,
        options: LiveOptions | None = None,
    ) -> None:
        self.matter, self.source = matter, source
        self.preview, self.vcam, self.files = preview, vcam, list(files)
        self.options = options or LiveOptions()
        self.device = torch.device(getattr(matter, "device", "cpu"))
        self.plate = plate
        self.step: FrameStep | None = None  # made for the plate and the frame size at the first frame
        self.state = "matting" if plate is not None else "countdown"
        self._deadline: float | None = None
        self._captured: list[np.ndarray] = []
        self._skipped = 0
        self._bg_index = 0
        self._backgrounds: dict[int, Background] = {}
        self._bg_iter: Any = None
        self.recapture = threading.Event()
        self.stop = threading.Event()
        self.meter = FpsMeter()
        self.stats = LiveStats()
        self.options.frame.check()

    # plate ------------------------------------------------------------------------------------
    def request_plate(self) -> None:
        """Start the countdown again (the 'p' key, SIGUSR1)."""
        self.recapture.set()

    def _set_plate(self, plate: np.ndarray) -> None:
        """A new plate: a fresh step (alignment, colour matching and smoothing start over)."""
        self.plate = plate
        self.step = None
        self.stats.plates += 1

    def _plate_step(self, frame: np.ndarray, t: float) -> np.ndarray:
        """Countdown / capture; returns the frame to show."""
        if self.state == "countdown":
            if self._deadline is None:
                self._deadline = t + self.options.plate_delay
            left = self._deadline - t
            if left > 0:
                return draw_text(frame, f"step out of the picture: plate in {int(np.ceil(left))}", corner="bottom-left")
            self.state, self._captured, self._skipped = "capture", [], 0
        if self._skipped < self.options.plate_skip:
            self._skipped += 1
            return draw_text(frame, "capturing plate...", corner="bottom-left")
        self._captured.append(frame)
        if len(self._captured) >= max(1, self.options.plate_frames):
            self._set_plate(temporal_median(self._captured))
            self._captured, self._deadline, self.state = [], None, "matting"
        return draw_text(frame, "capturing plate...", corner="bottom-left")

    # background -------------------------------------------------------------------------------
    def _background(self, frame: np.ndarray) -> np.ndarray:
        specs = list(self.options.backgrounds) or ["blur"]
        i = self._bg_index % len(specs)
        size = frame.shape[:2]
        bg = self._backgrounds.get(i)
        if bg is None or bg.size != size:
            bg = self._backgrounds[i] = Background(specs[i], size)
            self._bg_iter = None
        if bg.needs_frame:
            return bg.blur(frame)
        if bg.still is not None:
            return bg.still
        if self._bg_iter is None:
            self._bg_iter = bg.frames()
        return next(self._bg_iter)

    # matting ----------------------------------------------------------------------------------
    def _matte(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """Matte one frame; returns uint8 arrays per kind needed (comp always, rgba/alpha for files)."""
        size = frame.shape[:2]
        if self.step is None or self.step.size != size:  # the plate is fitted (or aligned) to this size
            self.step = FrameStep(self.matter, self.plate, size, self.options.frame)
        kinds = {("comp", "uint8")} | {(f.kind, f.spec.preset.sample) for f in self.files}
        with torch.inference_mode():
            src = to_device(torch.from_numpy(frame[None]), self.device)
            mattes = self.step.matte(src, frame[None] if self.step.aligner is not None else None)
            out = {}
            for kind, sample in kinds:
                bg = None
                if kind == "comp":
                    bg = to_device(torch.from_numpy(np.array(self._background(frame))[None]), self.device)
                key = kind if sample == "uint8" else f"{kind}:{sample}"  # float frames for 16-bit / EXR files
                out[key] = self.step.render(kind, mattes, bg, sample)[0].cpu().numpy()
        return out

    # loop -------------------------------------------------------------------------------------
    def _keys(self) -> None:
        if self.preview is None:
            return
        key = self.preview.key()
        if key in ("q", "\x1b"):
            self.stop.set()
        elif key == "p":
            self.request_plate()
        elif key == "b":
            self._bg_index += 1

    def run(self) -> LiveStats:
        """Loop until the source ends, ``max_frames`` are matted, 'q', or Ctrl-C; close every sink."""
        t0 = time.perf_counter()
        with self._sigusr1():
            try:
                self._loop()
            except KeyboardInterrupt:
                self.stats.interrupted = True
            finally:
                self.stats.seconds = time.perf_counter() - t0
                self._close()
        return self.stats

    def _loop(self) -> None:
        if self.plate is not None and self.step is None and self.stats.plates == 0:
            self._set_plate(self.plate)
        limit = self.options.max_frames
        while not self.stop.is_set():
            item = self.source.read()
            if item is None:
                return
            frame, t = item
            self.stats.seen += 1
            if self.recapture.is_set():
                self.recapture.clear()
                self.state, self._deadline = "countdown", None
            if self.state != "matting":
                shown = self._plate_step(frame, t)
                self._show(shown)
                continue
            outputs = self._matte(frame)
            for sink in self.files:
                sample = sink.spec.preset.sample
                sink.send(outputs[sink.kind if sample == "uint8" else f"{sink.kind}:{sample}"], t)
            self.stats.frames += 1
            fps = self.meter.tick()
            shown = outputs["comp"]
            if self.vcam is not None:
                self.vcam.send(shown)
            if self.preview is not None:
                self._show(draw_text(shown, f"{fps:4.1f} fps", corner="top-right") if self.options.show_fps else shown)
            if limit is not None and self.stats.frames >= limit:
                return

    def _show(self, frame: np.ndarray) -> None:
        if self.preview is not None:
            self.preview.send(frame)
            self._keys()

    def _close(self) -> None:
        for closer in (self.preview, self.vcam):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        with contextlib.suppress(Exception):
            self.source.close()
        for sink in self.files:  # stopping is the normal end of a live session: keep complete files
            path = sink.finish()
            if path is not None:
                self.stats.outputs.append(path)

    @contextlib.contextmanager
    def _sigusr1(self):
        """SIGUSR1 re-captures the plate (headless runs: ``kill -USR1 <pid>``)."""
        if not hasattr(signal, "SIGUSR1") or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGUSR1, lambda *_: self.request_plate())
        try:
            yield
        finally:
            signal.signal(signal.SIGUSR1, previous)
