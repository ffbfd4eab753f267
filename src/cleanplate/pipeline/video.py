"""Matte a whole video: decode thread → batched inference (main thread) → one encode thread per output.

:func:`prepare_video` checks everything that can fail before any work (input, range, outputs,
plate) and returns a :class:`VideoJob`; :meth:`VideoJob.run` processes it with a model. Each batch
goes through the per-frame step shared with ``live`` (:class:`~cleanplate.pipeline.frame.FrameStep`).

Why this shape: decoding, the network and encoding each take real time; with bounded queues
between them they overlap, so the slowest stage (the network) sets the pace and memory does not
grow with the video's length. Inference stays on the main thread so Ctrl-C lands there: decoding
stops, the frames already matted are encoded, every output is closed properly (a valid, playable
file) and kept under a ``.partial`` name; :class:`VideoInterrupted` carries where.

On CUDA, frames are staged in pinned memory and copied with ``non_blocking``; results come back
the same way and each batch carries a CUDA event the encoder waits on, so the GPU is never idle
waiting for the encoder. On CPU the same code runs without events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, OutputError
from ..io.formats import OutputSpec
from ..io.video_reader import VideoInfo, VideoReader, probe
from ..io.video_writer import AudioSource, FrameWriter, check_writable, open_writer
from ..models.guided.register import measure_shift
from ..plate.auto import AutoPlate, AutoPlateOptions
from ..plate.fit import PlateWarning, match_greyscale, match_plate, shift_note, to_grey_rgb
from ..plate.load import load_plate
from ..plate.track import AlignStats
from .background import Background
from .controls import MatteControls
from .frame import FrameOptions, FrameStep, Mattes
from .render import to_device
from .workers import END, Worker, deferred_sigint, discard, drain, put, put_checked


@dataclass
class VideoOptions:
    """How to process a video (the CLI flags of ``cleanplate video``)."""

    start: float | None = None  # seconds from the first frame
    end: float | None = None  # exclusive
    batch_size: int | None = 1  # None: 4 on CUDA, 1 on CPU
    background: str | Path | None = None  # for comp outputs: colour, image, video or 'blur'
    background_loop: bool = True  # a shorter background video loops (else holds its last frame)
    align: bool = False  # per-frame plate alignment (handheld / drifting camera)
    match_color: bool = False  # per-frame exposure / white-balance matching of the plate
    smooth: float = 0.0  # temporal matte smoothing strength in [0, 1)
    controls: MatteControls = field(default_factory=MatteControls)  # choke, feather, levels, garbage/holdout
    keep_shadow: float = 0.0  # multiply the shadow layer into comp outputs at this strength
    auto_plate: AutoPlateOptions = field(default_factory=AutoPlateOptions)  # for plate="auto"
    plate_outputs: dict[str, Path] = field(default_factory=dict)  # plate / confidence / never_seen → image path
    audio: bool = True
    force: bool = False
    progress: bool = True
    queue_batches: int = 3  # bounded queues: at most this many batches wait between two stages
    on_batch: Callable[[int], None] | None = None  # called with the frame count after each batch

    @property
    def frame(self) -> FrameOptions:
        """The per-frame step's options."""
        return FrameOptions.of(self)


@dataclass
class VideoResult:
    """What a run produced. ``outputs`` are final paths, or ``.partial`` paths when not ``complete``."""

    frames: int
    outputs: list[Path]
    complete: bool
    seconds: float
    expected_frames: int | None = None
    align: AlignStats | None = None
    notes: list[str] = field(default_factory=list)
    auto_plate: AutoPlate | None = None  # the plate built from the clip (plate="auto")
    warnings: list[str] = field(default_factory=list)  # e.g. the input ended before its declared length

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class VideoInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`process_video`; ``result`` says what was kept (partial outputs)."""

    def __init__(self, result: VideoResult) -> None:
        super().__init__("interrupted")
        self.result = result


@dataclass
class _Batch:
    images: torch.Tensor  # (B, H, W, 3) uint8, pinned on CUDA
    pts: list[int]  # output pts (input pts minus the first frame's)
    backgrounds: torch.Tensor | None = None  # (B, H, W, 3) uint8 for video / blur backgrounds
    src: torch.Tensor | None = None  # (B, 3, H, W) float, converted by the decoder on CPU

    def __len__(self) -> int:
        return len(self.pts)


@dataclass
class _Sink:
    writer: FrameWriter
    queue: queue.Queue
    worker: Worker


def check_outputs(outputs: Sequence[OutputSpec], source: Path, force: bool) -> None:
    """Refuse up front: duplicated outputs, an output that is the input, existing files."""
    seen: dict[Path, OutputSpec] = {}
    src = source.resolve()
    for spec in outputs:
        key = spec.path.resolve()
        if key == src:
            raise OutputError(f"output {spec.path} is the input video; choose another name")
        if key in seen:
            raise OutputError(f"{spec.path} is given twice (as {seen[key].kind} and {spec.kind})")
        seen[key] = spec
        check_writable(spec, force)
    if not outputs:
        raise InputError("no output given: use -o PATH (e.g. -o out.mov) or --save KIND=PATH")


def check_range(info: VideoInfo, start: float | None, end: float | None) -> None:
    """Refuse a --start past the end of the video (when its duration is known) before any work."""
    if start is not None and end is not None and end <= start:
        raise InputError(f"--end ({end}s) must be after --start ({start}s)")
    if start is not None and info.duration is not None and start >= info.duration:
        raise InputError(f"--start {start:g}s is past the end of {info.path} ({info.duration:.2f}s long)")


@dataclass
class VideoJob:
    """A video checked and ready to matte (:func:`prepare_video`); :meth:`run` it with a model."""

    source: Path
    info: VideoInfo
    outputs: list[OutputSpec]
    plate: np.ndarray | None  # uint8 H×W×3 RGB, loaded once; None: built from the clip at run time
    options: VideoOptions
    background: Background | None = None  # for comp outputs
    auto_plate: AutoPlate | None = None
    plate_shift: tuple[float, float] | None = None  # (dx, dy) px of the plate against the first frame, if clear

    @property
    def auto(self) -> bool:
        """The plate is to be built from the clip itself (``--plate auto``)."""
        return self.plate is None

    def build_plate(self, matter: Any) -> AutoPlate:
        """Build the plate from the clip (the job's range) with ``matter``; write the plate outputs."""
        from ..plate.auto import plate_from_subject_clip

        opts = self.options
        auto = dataclasses.replace(opts.auto_plate, align=opts.align)
        result = plate_from_subject_clip(self.source, matter, options=auto, start=opts.start, end=opts.end, warn=False)
        self.auto_plate, self.plate = result, result.plate
        save_plate_outputs(result, opts.plate_outputs, force=opts.force)
        return result

    def run(self, matter: Any) -> VideoResult:
        """Matte the video with ``matter`` (a :class:`cleanplate.Matter`: ``matte_tensor`` and ``device``).

        With ``plate="auto"`` the plate is first built from the clip (:meth:`build_plate`); a
        never-seen warning is a :class:`~cleanplate.plate.auto.NeverSeenWarning` and a note.
        Raises :class:`VideoInterrupted` on Ctrl-C (outputs kept as partial files); on any other
        failure the exception gets a ``partial`` attribute (the :class:`VideoResult` of what was kept).
        """
        if self.plate is None:
            from ..plate.auto import NeverSeenWarning

            message = self.build_plate(matter).warning()
            if message is not None:
                warnings.warn(message, NeverSeenWarning, stacklevel=2)
        else:
            self._warn_shift(matter)
            if self.options.plate_outputs:
                save_plate_outputs(None, self.options.plate_outputs, force=self.options.force, plate=self.plate)
        result = _Run(matter, self).run()
        result.auto_plate = self.auto_plate
        return result

    def _warn_shift(self, matter: Any) -> None:
        """A :class:`~cleanplate.plate.fit.PlateWarning` when the plate is shifted by more than
        ``matter`` registers by itself (measured once, when the job was prepared)."""
        h, w = self.info.height, self.info.width
        tolerance = getattr(matter, "plate_shift_tolerance", lambda h, w: 0.0)(h, w)
        note = shift_note(self.plate_shift, (h, w), tolerance)
        if note is not None:
            warnings.warn(PlateWarning(note), stacklevel=3)


PLATE_OUTPUTS = ("plate", "confidence", "never_seen")


def is_auto_plate(plate: object) -> bool:
    """``plate="auto"`` (the CLI's ``--plate auto``; a file named auto is ``./auto``)."""
    return isinstance(plate, (str, Path)) and str(plate) == "auto"


def check_plate_outputs(outputs: dict[str, Path], auto: bool, force: bool) -> None:
    """Refuse unknown kinds, a confidence/never_seen output without ``--plate auto``, and existing files."""
    from ..io.atomic import check_output
    from ..io.image import write_format

    for kind, path in outputs.items():
        if kind not in PLATE_OUTPUTS:
            raise InputError(f"unknown plate output {kind!r}; use one of {', '.join(PLATE_OUTPUTS)}")
        if kind != "plate" and not auto:
            raise InputError(f"{kind}={path} needs --plate auto (the plate built from the clip)")
        write_format(path)  # a known image extension
        check_output(path, force)


def save_plate_outputs(
    result: AutoPlate | None, outputs: dict[str, Path], *, force: bool, plate: np.ndarray | None = None
) -> list[Path]:
    """Write the plate, the confidence map (grey) and the never-seen mask (white = never seen)."""
    from ..io.image import write_image

    images = {"plate": plate if result is None else result.plate}
    if result is not None:
        images["confidence"] = result.confidence
        images["never_seen"] = result.never_seen
    written = []
    for kind, path in outputs.items():
        written.append(write_image(path, images[kind], force=force))
    return written


def prepare_video(
    source: str | Path,
    outputs: Sequence[OutputSpec],
    plate: str | Path | np.ndarray | None = None,
    *,
    plate_frames: tuple[int, int | None] | None = None,
    options: VideoOptions | None = None,
) -> VideoJob:
    """Check everything that can fail before any work and load the plate (image, clip, array or
    the input's ``plate_frames``); the model is not needed yet. ``plate="auto"`` builds the plate
    from the clip itself when the job runs (:meth:`VideoJob.build_plate`)."""
    options = options or VideoOptions()
    source = Path(source)
    if options.batch_size is not None and options.batch_size < 1:
        raise InputError(f"batch size must be at least 1; got {options.batch_size}")
    options.frame.check()
    auto = is_auto_plate(plate) and plate_frames is None
    if auto:
        options.auto_plate.check()
    info = probe(source)
    check_range(info, options.start, options.end)
    check_outputs(outputs, source, options.force)
    check_plate_outputs(options.plate_outputs, auto, options.force)
    size = (info.height, info.width)
    image = None if auto else load_plate(plate, source=source, frame_range=plate_frames)  # type: ignore[arg-type]
    shift = None
    if image is not None and not options.align:
        fitted = match_plate(image, size)  # another aspect fails here, before the model loads
        image, shift = _check_plate(image, fitted, source, options.start)
    for name in ("garbage", "holdout"):  # a mask of another aspect fails now, not at the first frame
        mask = getattr(options.controls, name)
        if mask is not None:
            from .controls import read_mask

            read_mask(mask, size, name)
    background = None
    if any(spec.kind == "comp" for spec in outputs):
        background = Background(options.background, size, loop=options.background_loop)
    return VideoJob(source, info, list(outputs), image, options, background, plate_shift=shift)


def _first_frame(source: Path, start: float | None) -> np.ndarray | None:
    try:
        with VideoReader(source, start=start) as reader:
            for frame in reader:
                return frame.image
    except InputError:
        return None
    return None


def _check_plate(
    image: np.ndarray, fitted: np.ndarray, source: Path, start: float | None
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Cheap checks on the first frame that would otherwise give a silently wrong matte: a
    greyscale video gets a grey copy of a colour plate (warned as
    :class:`~cleanplate.plate.fit.PlateWarning`); the plate's shift against the frame is measured
    and returned, to be judged against what the model registers itself when the job runs."""
    first = _first_frame(source, start)
    if first is None:
        return image, None
    _, note = match_greyscale(fitted, first)
    if note is not None:
        warnings.warn(PlateWarning(note), stacklevel=3)
        image, fitted = to_grey_rgb(image), to_grey_rgb(fitted)
    return image, measure_shift(first, fitted)


def process_video(
    matter: Any,
    source: str | Path,
    outputs: Sequence[OutputSpec],
    plate: str | Path | np.ndarray | None = None,
    *,
    plate_frames: tuple[int, int | None] | None = None,
    options: VideoOptions | None = None,
) -> VideoResult:
    """Matte ``source`` against ``plate`` (image, clip, array, ``"auto"``) or the input's ``plate_frames``.

    ``prepare_video(...).run(matter)``: see :func:`prepare_video` and :meth:`VideoJob.run`.
    """
    return prepare_video(source, outputs, plate, plate_frames=plate_frames, options=options).run(matter)


class _Run:
    """One run of a :class:`VideoJob`: the threads, the queues and the outputs."""

    def __init__(self, matter: Any, job: VideoJob) -> None:
        self.matter, self.info, self.outputs = matter, job.info, job.outputs
        self.size = (job.info.height, job.info.width)
        self.device = torch.device(getattr(matter, "device", "cpu"))
        self.cuda = self.device.type == "cuda"
        batch = job.options.batch_size or (4 if self.cuda else 1)
        self.options = dataclasses.replace(job.options, batch_size=batch)
        self.kinds = sorted({(spec.kind, spec.preset.sample) for spec in self.outputs})
        self.first_pts: int | None = None
        self.first_time = 0.0
        self.time_base = self.info.time_base
        self.inferred = 0
        self.sinks: list[_Sink] = []
        self.notes: list[str] = []
        assert job.plate is not None, "an auto plate is built before the run"
        frame = dataclasses.replace(self.options.frame, shadow=any(spec.kind == "shadow" for spec in self.outputs))
        self.step = FrameStep(matter, job.plate, self.size, frame)
        self.background = job.background
        self.background_t = None
        if self.background is not None and self.background.still is not None:
            self.background_t = self._to_device(torch.from_numpy(np.array(self.background.still)[None]))

    def _to_device(self, images: torch.Tensor) -> torch.Tensor:
        return to_device(images, self.device)

    # stages -------------------------------------------------------------------------------------
    def _decode(self, out: queue.Queue, stop: threading.Event) -> None:
        opts = self.options
        bg = self.background
        bg_frames = bg.frames() if bg is not None and bg.kind == "video" else None
        images: list[np.ndarray] = []
        pts: list[int] = []
        backgrounds: list[np.ndarray] = []

        def flush() -> bool:
            batch = _Batch(self._stack(images), list(pts))
            if not self.cuda:  # the conversion overlaps inference instead of preceding it
                batch.src = self._to_device(batch.images)
            if backgrounds:
                batch.backgrounds = self._stack(backgrounds)
            images.clear(), pts.clear(), backgrounds.clear()
            return put(out, batch, stop)

        with VideoReader(self.info.path, start=opts.start, end=opts.end) as reader:
            for frame in reader:
                if stop.is_set():
                    return
                if self.first_pts is None:
                    self.first_pts, self.first_time = frame.pts, frame.time
                image = frame.image
                if image.shape[:2] != self.size:  # a mid-stream resolution change: keep the first size
                    import cv2

                    image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
                images.append(image)
                pts.append(frame.pts - self.first_pts)
                if bg_frames is not None:
                    backgrounds.append(next(bg_frames))
                elif bg is not None and bg.needs_frame:
                    backgrounds.append(bg.blur(image))
                if len(images) == opts.batch_size and not flush():
                    return
        if images and not flush():
            return
        if self.first_pts is None:
            raise InputError(f"{self.info.path}: no frames in the requested range")
        put(out, END, stop)

    def _stack(self, arrays: list[np.ndarray]) -> torch.Tensor:
        t = torch.from_numpy(np.stack(arrays))
        return t.pin_memory() if self.cuda else t

    def _infer(self, batch: _Batch) -> tuple[dict[str, torch.Tensor], Any]:
        """Matte one batch; returns uint8 (B, H, W, C) CPU tensors per output kind and a CUDA event."""
        with torch.inference_mode():
            src = batch.src if batch.src is not None else self._to_device(batch.images)
            images = batch.images.numpy() if self.step.aligner is not None else None
            mattes = self.step.matte(src, images)
            results = {(kind, sample): self._render(kind, mattes, batch, sample) for kind, sample in self.kinds}
            event = None
            if self.cuda:
                event = torch.cuda.Event()
                event.record()
            return results, event

    def _render(self, kind: str, mattes: Mattes, batch: _Batch, sample: str = "uint8") -> Any:
        """On CUDA: results rendered on the GPU, copied back asynchronously. On CPU: a callable
        the encode thread runs, so compositing overlaps the next batch's inference."""
        bg = None
        if kind == "comp":
            bg = self.background_t if self.background_t is not None else self._to_device(batch.backgrounds)
        if self.cuda:
            return self.step.render(kind, mattes, bg, sample).to("cpu", non_blocking=True)
        return functools.partial(self.step.render, kind, mattes, bg, sample)

    @staticmethod
    def _encode(writer: FrameWriter, q: queue.Queue) -> None:
        while True:
            item = q.get()
            if item is END:
                return
            arrays, pts, event = item
            if event is not None:
                event.synchronize()
            if callable(arrays):
                with torch.inference_mode():
                    arrays = arrays()
            frames = arrays.numpy()
            for i, p in enumerate(pts):
                writer.write(frames[i], p)

    def _open_sinks(self) -> None:
        audio = None
        if self.options.audio and self.info.audio_codec is not None:
            end = None if self.options.end is None else self.options.end + self.info.origin
            audio = AudioSource(self.info.path, start=0.0, end=end, offset=self.first_time)
        for spec in self.outputs:
            writer = open_writer(
                spec, time_base=self.time_base, rate=self.info.rate, audio=audio, force=self.options.force
            )
            q: queue.Queue = queue.Queue(maxsize=self.options.queue_batches)
            worker = Worker(f"encode-{spec.kind}", lambda w=writer, q=q: self._encode(w, q))
            worker.start()
            self.sinks.append(_Sink(writer, q, worker))

    # run ----------------------------------------------------------------------------------------
    def _expected(self) -> int | None:
        n = self.info.estimated_frames
        if n is None or not self.info.rate:
            return n
        start = self.options.start or 0.0
        end = self.options.end
        duration = self.info.duration or n / float(self.info.rate)
        span = max(0.0, (min(end, duration) if end is not None else duration) - start)
        return max(1, round(span * float(self.info.rate))) if (start or end is not None) else n

    def run(self) -> VideoResult:
        from tqdm import tqdm

        t0 = time.perf_counter()
        stop = threading.Event()
        decoded: queue.Queue = queue.Queue(maxsize=self.options.queue_batches)
        decoder = Worker("decode", lambda: self._decode(decoded, stop))
        expected = self._expected()
        bar = tqdm(
            total=expected,
            unit="frame",
            desc=self.info.path.name,
            disable=None if self.options.progress else True,  # None: only on a terminal, not in logs
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )
        failure: BaseException | None = None
        interrupted = False
        decoder.start()
        try:
            for batch in drain(decoded, decoder):
                if not self.sinks:
                    self._open_sinks()
                results, event = self._infer(batch)
                for sink in self.sinks:
                    key = (sink.writer.spec.kind, sink.writer.spec.preset.sample)
                    put_checked(sink.queue, (results[key], batch.pts, event), sink.worker)
                self.inferred += len(batch)
                bar.update(len(batch))
                if self.options.on_batch is not None:
                    self.options.on_batch(self.inferred)
        except KeyboardInterrupt:
            interrupted = True
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the outputs are safe
            failure = exc
        with deferred_sigint():
            stop.set()
            discard(decoded)
            result = self._close(complete=not interrupted and failure is None, t0=t0, expected=expected)
            bar.close()
            decoder.join(timeout=5)
        if result.complete:
            short = self._shortfall(expected)
            if short:
                result.warnings.append(short)
            return result
        failure = failure or self._sink_error
        if interrupted or failure is None:
            raise VideoInterrupted(result)
        with contextlib.suppress(AttributeError):
            failure.partial = result  # type: ignore[attr-defined]
        raise failure

    _sink_error: BaseException | None = None

    def _shortfall(self, expected: int | None) -> str | None:
        """A warning when decoding ended well before the frame count the container declares (a cut file)."""
        decoded = self.inferred
        declared = self.info.frames
        ranged = self.options.start is not None or self.options.end is not None
        if declared and not ranged:
            if decoded >= declared - 1:  # the container's count is exact, give or take an edit list
                return None
            want = declared
        elif expected:
            if decoded >= 0.9 * expected - 1:  # estimated from the duration: only a clear shortfall counts
                return None
            want = expected
        else:
            return None
        return (
            f"{self.info.path}: only {decoded} of the {want} frames its container declares could be decoded "
            f"(the file looks truncated); the outputs hold those {decoded} frames"
        )

    def _close(self, *, complete: bool, t0: float, expected: int | None) -> VideoResult:
        """Let every encoder finish its queue, then finish (rename) or abort (keep partial) each output."""
        for sink in self.sinks:
            while sink.worker.is_alive():
                try:
                    sink.queue.put(END, timeout=0.1)
                    break
                except queue.Full:
                    continue
        for sink in self.sinks:
            sink.worker.join()
            if sink.worker.error is not None and self._sink_error is None:
                self._sink_error = sink.worker.error
                complete = False
        paths: list[Path] = []
        pending = list(self.sinks)
        try:
            while pending:
                sink = pending.pop(0)
                path = sink.writer.finish() if complete else sink.writer.abort()
                if path is not None:
                    paths.append(path)
        except BaseException:
            for sink in pending:
                path = sink.writer.abort()
                if path is not None:
                    paths.append(path)
            raise
        for sink in self.sinks:
            note = getattr(sink.writer, "audio_note", None)
            if note:
                self.notes.append(f"{sink.writer.spec.path}: {note}")
        frames = min((sink.writer.frames for sink in self.sinks), default=0)
        align = self.step.align_stats
        return VideoResult(
            frames=frames,
            outputs=paths,
            complete=complete,
            seconds=time.perf_counter() - t0,
            expected_frames=expected,
            align=align,
            notes=self.notes,
        )
