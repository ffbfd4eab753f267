"""Write video with PyAV: lazily opened streams, kept timestamps, audio, safe partial files.

:func:`open_writer` starts the stream lazily from the first frame, stamps every frame with the
pts it is given (in the input's time base), interleaves the input's audio, and writes to a hidden
temp file renamed on success. If the run stops early (Ctrl-C, an error) the container is still
closed properly, so the frames done form a valid, playable file kept as ``NAME.partial.EXT``
(never under the final name); :meth:`abort` returns that path so the caller can say so.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import cv2
import numpy as np

from ..errors import OutputError, reason
from .atomic import check_output, disk_full_error, is_disk_full, temp_path_for
from .audio import AudioCarrier
from .formats import MATTE_KINDS, OutputSpec, check_encoder, sequence_regex

PARTIAL_TAG = ".partial"


class FrameWriter(Protocol):
    """What the pipeline needs from an output: write frames, then finish or abort."""

    spec: OutputSpec
    frames: int

    def write(self, image: np.ndarray, pts: int) -> None: ...
    def finish(self) -> Path | None: ...
    def abort(self) -> Path | None: ...


@dataclass(frozen=True)
class AudioSource:
    """Where the audio for an output comes from and how it is cut (seconds, input timeline)."""

    path: Path
    start: float = 0.0
    end: float | None = None
    offset: float = 0.0  # input time of the first video frame written


def partial_path(final: Path) -> Path:
    """``out.mov`` → ``out.partial.mov`` (``out.partial-2.mov`` … when taken); folders too."""
    suffix = final.suffix if not final.is_dir() else ""
    stem = final.name[: len(final.name) - len(suffix)] if suffix else final.name
    candidate = final.with_name(f"{stem}{PARTIAL_TAG}{suffix}")
    n = 2
    while candidate.exists():
        candidate = final.with_name(f"{stem}{PARTIAL_TAG}-{n}{suffix}")
        n += 1
    return candidate


def check_writable(spec: OutputSpec, force: bool) -> None:
    """Refuse before any work when an output exists (without ``force``) or cannot be written."""
    check_encoder(spec.preset)
    if not spec.is_sequence:
        check_output(spec.path, force)
        return
    folder = spec.path
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output {folder} is a file, not a folder for PNG frames")
    if folder.is_dir():
        if not force and any(_sequence_files(folder, spec.pattern or "")):
            raise OutputError(f"output folder {folder} already holds {spec.pattern} frames (use --force to overwrite)")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise OutputError(f"output folder {folder} is not writable")
        return
    parent = next((p for p in folder.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create output folder {folder}: {parent} is not a writable folder")


@contextlib.contextmanager
def _disk_full_names(final: Path) -> Iterator[None]:
    """A full disk while encoding becomes one :class:`OutputError` naming the output, not its temp file."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc) and not isinstance(exc, OutputError):
            raise disk_full_error(final) from exc
        raise


def _sequence_files(folder: Path, pattern: str) -> Iterator[Path]:
    regex = sequence_regex(pattern)
    return (p for p in folder.iterdir() if regex.match(p.name))


def _even(n: int) -> int:
    return n + (n & 1)


class VideoFileWriter:
    """Encode frames into one video container (see the module docstring for the file policy)."""

    def __init__(
        self,
        spec: OutputSpec,
        *,
        time_base: Fraction,
        rate: Fraction | None = None,
        audio: AudioSource | None = None,
        force: bool = False,
    ) -> None:
        check_writable(spec, force)
        self.spec, self.force = spec, force
        self.time_base, self.rate, self.audio_source = time_base, rate, audio
        self.frames = 0
        self.tmp = temp_path_for(spec.path)
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._audio: AudioCarrier | None = None
        self._last_pts: int | None = None
        self._pad = (0, 0)
        self.audio_mode: str | None = None  # 'copy', or the codec audio was re-encoded to
        self.audio_note: str | None = None  # why audio is missing or short, when it is

    # lazy init from the first frame -----------------------------------------------------------
    def _open(self, image: np.ndarray) -> None:
        preset = self.spec.preset
        pix_fmt = preset.pix_fmt_for(self.spec.channels)
        h, w = image.shape[:2]
        subsampled = pix_fmt.startswith(("yuv420", "yuva420", "yuv422", "yuva422"))
        width, height = (_even(w), _even(h)) if subsampled else (w, h)
        self._pad = (height - h, width - w)
        try:
            container = av.open(str(self.tmp), "w", format=preset.container)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self.spec.path}: {reason(exc)}") from exc
        try:
            stream = container.add_stream(preset.codec, options=preset.options_for(self.spec.kind))
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            stream.time_base = self.time_base
            cc = stream.codec_context
            cc.time_base = self.time_base
            if self.rate:
                cc.framerate = self.rate
            cc.thread_type = "AUTO"
            self._full_range = preset.full_range or self.spec.kind in MATTE_KINDS
            if pix_fmt.startswith("yuv"):
                cc.colorspace = 1  # BT.709, also used for the RGB→YUV conversion below
                cc.color_primaries = 1
                cc.color_trc = 1
                cc.color_range = 2 if self._full_range else 1
            if self.audio_source is not None:
                try:
                    self._audio = AudioCarrier(
                        self.audio_source.path,
                        container,
                        start=self.audio_source.start,
                        end=self.audio_source.end,
                        offset=self.audio_source.offset,
                        reencode=preset.audio_codec,
                    )
                    self.audio_mode = self._audio.mode
                    if self.audio_mode is None:
                        codec = self._audio.codec
                        self._audio = None
                        self.audio_note = f"audio dropped ({codec} cannot go into {preset.container})"
                except (av.FFmpegError, ValueError, IndexError) as exc:
                    self.audio_note = f"audio dropped ({reason(exc)})"
        except BaseException:
            container.close()
            with contextlib.suppress(OSError):
                self.tmp.unlink()
            raise
        self._container, self._stream, self._pix_fmt = container, stream, pix_fmt

    def _frame(self, image: np.ndarray) -> av.VideoFrame:
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if any(self._pad):
            pad = ((0, self._pad[0]), (0, self._pad[1])) + (((0, 0),) if image.ndim == 3 else ())
            image = np.pad(image, pad, mode="edge")
        fmt = {2: "gray", 3: "rgb24", 4: "rgba"}[image.ndim if image.ndim == 2 else image.shape[2]]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        if self._pix_fmt.startswith("yuv"):
            frame = frame.reformat(
                format=self._pix_fmt, dst_colorspace="itu709", dst_color_range=2 if self._full_range else 1
            )
        return frame

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one frame with timestamp ``pts`` (in ``time_base``; strictly increasing)."""
        if self._container is None:
            self._open(image)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame = self._frame(image)
        frame.pts = pts
        frame.time_base = self.time_base
        with _disk_full_names(self.spec.path):
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self.frames += 1
        if self._audio is not None:
            self._audio_step(self._audio.mux_until, float(pts * self.time_base))

    def _audio_step(self, fn, *args) -> None:
        """Run an audio step; a broken audio stream ends the audio, never the video."""
        try:
            fn(*args)
        except (av.FFmpegError, ValueError) as exc:
            self.audio_note = f"audio stopped early ({reason(exc)})"
            audio, self._audio = self._audio, None
            if audio is not None:
                audio.close()

    def _close(self, complete: bool) -> None:
        container, self._container = self._container, None
        if container is None:
            return
        try:
            with _disk_full_names(self.spec.path):
                for packet in self._stream.encode(None):
                    container.mux(packet)
                if self._audio is not None:
                    self._audio_step(self._audio.finish if complete else self._audio.flush)
        finally:
            if self._audio is not None:
                self._audio.close()
            with _disk_full_names(self.spec.path):
                container.close()

    def finish(self) -> Path | None:
        """Flush, close and move the file to its final name; None when no frame was written."""
        if self._container is None:
            return None
        try:
            self._close(complete=True)
        except BaseException:
            self._discard()
            raise
        if self.spec.path.exists() and not self.force:
            kept = partial_path(self.spec.path)
            os.replace(self.tmp, kept)
            raise OutputError(f"output {self.spec.path} appeared while writing; the result is kept as {kept}")
        os.replace(self.tmp, self.spec.path)
        return self.spec.path

    def abort(self) -> Path | None:
        """Close what was written so it stays playable and keep it as ``NAME.partial.EXT``."""
        if self._container is None:
            self._discard()
            return None
        try:
            self._close(complete=False)
        except Exception:
            self._discard()
            return None
        if self.frames == 0 or not self.tmp.exists():
            self._discard()
            return None
        target = partial_path(self.spec.path)
        os.replace(self.tmp, target)
        return target

    def _discard(self) -> None:
        with contextlib.suppress(OSError):
            self.tmp.unlink()


class SequenceWriter:
    """Write one PNG (8 or 16-bit) or EXR per frame. Frames go to a staging folder ``NAME.partial`` beside the target
    (each PNG written under a temp name and renamed, so no half PNG ever exists) and are moved into
    the target folder when the run completes; an interrupted run leaves the staging folder.
    """

    def __init__(self, spec: OutputSpec, *, force: bool = False, **_: object) -> None:
        check_writable(spec, force)
        self.spec, self.force = spec, force
        self.pattern = spec.pattern or "%06d.png"
        self.frames = 0
        self.stage: Path | None = None
        self.audio_mode: str | None = None
        self.audio_note: str | None = None

    def write(self, image: np.ndarray, pts: int) -> None:
        if self.stage is None:
            self.stage = partial_path(self.spec.path)
            try:
                self.stage.mkdir(parents=True)
            except OSError as exc:
                raise OutputError(f"cannot create {self.stage}: {reason(exc)}") from exc
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        name = self.pattern % self.frames
        tmp = self.stage / f".tmp-{secrets.token_hex(3)}-{name}"
        try:  # written by Python, so a full disk is an OSError naming the frame, not a libpng line
            if self.spec.preset.codec == "exr":
                from .exr import write_exr_file

                write_exr_file(tmp, image)
            else:
                if image.dtype != np.uint8:  # float frames: 16-bit PNG
                    image = np.rint(np.clip(image, 0, 1) * 65535).astype(np.uint16)
                if image.ndim == 3:
                    image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
                ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
                if not ok:
                    raise OutputError(f"cannot write {self.spec.path / name}: the PNG encoder failed")
                with open(tmp, "wb") as f:
                    f.write(data.tobytes())
            os.replace(tmp, self.stage / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if is_disk_full(exc):
                raise disk_full_error(self.spec.path / name) from exc
            raise OutputError(f"cannot write {self.spec.path / name}: {reason(exc)}") from exc
        self.frames += 1

    def finish(self) -> Path | None:
        if self.stage is None:
            return None
        folder = self.spec.path
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {folder}: {reason(exc)}") from exc
        written = {self.pattern % i for i in range(self.frames)}
        if self.force:  # stale frames of an earlier, longer run would corrupt the sequence
            for stale in _sequence_files(folder, self.pattern):
                if stale.name not in written:
                    stale.unlink()
        for name in sorted(written):
            os.replace(self.stage / name, folder / name)
        shutil.rmtree(self.stage, ignore_errors=True)
        return folder

    def abort(self) -> Path | None:
        if self.stage is None:
            return None
        if self.frames == 0:
            shutil.rmtree(self.stage, ignore_errors=True)
            return None
        for leftover in self.stage.glob(".tmp-*"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        return self.stage


def open_writer(
    spec: OutputSpec,
    *,
    time_base: Fraction,
    rate: Fraction | None = None,
    audio: AudioSource | None = None,
    force: bool = False,
) -> FrameWriter:
    """The writer for ``spec``: a video file or a PNG sequence. Nothing is created before the first frame."""
    if spec.is_sequence:
        return SequenceWriter(spec, force=force)
    return VideoFileWriter(spec, time_base=time_base, rate=rate, audio=audio, force=force)
