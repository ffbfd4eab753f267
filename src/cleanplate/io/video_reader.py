"""Read video with PyAV: exact frames, kept timestamps, rotation (writing: :mod:`.video_writer`).

:class:`VideoReader` decodes every frame (no frame-rate guessing, so the count is exact), keeps
each frame's pts (variable frame rate survives), turns frames upright from the display matrix /
legacy ``rotate`` tag, and seeks to ``start`` then decodes forward to the exact frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from ..errors import InputError, reason

SEEK_EPS = 1e-4  # seconds; a frame at start - eps still counts as "at start"


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns without decoding. ``width``/``height`` are upright (after rotation)."""

    path: Path
    width: int
    height: int
    rotation: int  # counter-clockwise degrees applied for display: 0, 90, 180 or 270
    time_base: Fraction
    rate: Fraction | None  # average frame rate; None when the container does not say
    frames: int | None  # container's frame count (may be missing or approximate)
    duration: float | None  # seconds
    codec: str
    audio_codec: str | None
    alpha: bool  # the stream carries alpha (ProRes 4444, VP9 alpha, PNG/FFV1 with alpha)
    origin: float = 0.0  # seconds of the stream's first timestamp; start/end count from here

    @property
    def estimated_frames(self) -> int | None:
        """Best guess of the number of frames, for progress bars only."""
        if self.frames:
            return self.frames
        if self.duration and self.rate:
            return max(1, round(self.duration * float(self.rate)))
        return None


class Frame(NamedTuple):
    """One decoded frame: ``image`` upright uint8 H×W×3 RGB (H×W×4 with ``alpha=True``)."""

    image: np.ndarray
    pts: int
    time_base: Fraction
    index: int  # position among the frames this reader yielded (0-based)

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a video")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except PermissionError as exc:
        raise InputError(f"{path}: permission denied") from exc
    except av.error.InvalidDataError as exc:
        raise InputError(f"{path}: not a video file, or corrupt (FFmpeg cannot parse it)") from exc
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"{path}: cannot open video ({reason(exc)})") from exc


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        has = f" (it has {', '.join(kinds)} only)" if kinds else ""
        raise InputError(f"{path}: no video stream{has}")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise InputError(f"{path}: unsupported video codec (this FFmpeg build has no decoder for it)")
    return stream


def _stream_rotation(stream: av.video.stream.VideoStream) -> int:
    """Counter-clockwise display rotation from the legacy ``rotate`` tag (clockwise degrees)."""
    tag = stream.metadata.get("rotate")
    if tag is None:
        return 0
    try:
        return snap_rotation(-float(tag))
    except ValueError:
        return 0


def snap_rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) * 90 % 360


def _has_alpha(stream: av.video.stream.VideoStream) -> bool:
    if stream.metadata.get("alpha_mode") == "1" or stream.metadata.get("ALPHA_MODE") == "1":
        return True
    fmt = stream.codec_context.format
    return bool(fmt is not None and any(c.is_alpha for c in fmt.components))


def _first_rotation(container: av.container.InputContainer, stream, path: Path) -> int:
    """The display rotation of the first frame (decoders attach the display matrix to frames).

    Raises :class:`InputError` when not a single frame decodes.
    """
    try:
        for frame in container.decode(stream):
            return snap_rotation(frame.rotation) if frame.rotation else _stream_rotation(stream)
    except av.FFmpegError as exc:
        raise InputError(f"{path}: corrupt video, no frame decodes ({reason(exc)})") from exc
    raise InputError(f"{path}: no decodable video frames")


def probe(path: str | os.PathLike, *, decode_first: bool = True) -> VideoInfo:
    """Describe a video; one-line :class:`InputError` for missing, corrupt or unsupported files."""
    p = Path(path)
    with _open_input(p) as container:
        stream = _video_stream(container, p)
        rotation = _first_rotation(container, stream, p) if decode_first else _stream_rotation(stream)
        w, h = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            w, h = h, w
        duration = None
        if stream.duration:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        audio = container.streams.audio[0].codec_context if container.streams.audio else None
        return VideoInfo(
            path=p,
            width=w,
            height=h,
            rotation=rotation,
            time_base=stream.time_base or Fraction(1, 1000),
            rate=stream.average_rate or stream.guessed_rate or None,
            frames=stream.frames or None,
            duration=duration,
            codec=stream.codec_context.name,
            audio_codec=audio.name if audio is not None else None,
            alpha=_has_alpha(stream),
            origin=float((stream.start_time or 0) * (stream.time_base or 0)),
        )


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a counter-clockwise display rotation (0/90/180/270) to an H×W×C array."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


class VideoReader:
    """Iterate over the frames of a video as :class:`Frame` tuples; a context manager.

    ``start``/``end`` are seconds from the first frame (end exclusive); ``frame_range`` = (a, b)
    keeps frames a..b-1 by decode order instead. ``alpha=True`` yields RGBA (VP9 alpha is decoded
    with libvpx, which FFmpeg's native VP9 decoder would drop).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        start: float | None = None,
        end: float | None = None,
        frame_range: tuple[int, int | None] | None = None,
        alpha: bool = False,
        threads: bool = True,
    ) -> None:
        if start is not None and start < 0:
            raise InputError(f"--start must be >= 0 seconds; got {start}")
        if start is not None and end is not None and end <= start:
            raise InputError(f"--end ({end}s) must be after --start ({start}s)")
        self.path = Path(path)
        self.info = probe(self.path)
        self.start, self.end, self.frame_range = start, end, frame_range
        self.alpha = alpha
        self.threads = threads
        self._container: av.container.InputContainer | None = None
        self.decoded = 0  # frames yielded so far

    # context manager -------------------------------------------------------------------------
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    # iteration -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Frame]:
        self.close()
        self._container = _open_input(self.path)
        stream = _video_stream(self._container, self.path)
        if self.threads:
            stream.thread_type = "AUTO"
        tb = stream.time_base or Fraction(1, 1000)
        origin = (stream.start_time or 0) * tb
        start = (self.start or 0.0) + float(origin)
        end = None if self.end is None else self.end + float(origin)
        source = self._decode(stream, start if self.start else None)
        step = 1 / float(self.info.rate) if self.info.rate else 1 / 25
        last_pts: int | None = None
        index = 0
        for position, frame in enumerate(source):
            pts = frame.pts
            if pts is None:  # raw streams without timestamps: synthesize from the rate
                pts = round(position * step / tb)
            t = float(pts * tb)
            if self.start and t < start - SEEK_EPS:
                continue
            if end is not None and t >= end - SEEK_EPS:
                break
            if self.frame_range is not None:
                a, b = self.frame_range
                if position < a:
                    continue
                if b is not None and position >= b:
                    break
            if last_pts is not None and pts <= last_pts:  # broken files: keep order strictly increasing
                pts = last_pts + 1
            last_pts = pts
            yield Frame(self._to_array(frame), pts, tb, index)
            index += 1
            self.decoded = index

    def _to_array(self, frame: av.VideoFrame) -> np.ndarray:
        image = frame.to_ndarray(format="rgba" if self.alpha else "rgb24")
        rotation = snap_rotation(frame.rotation) if frame.rotation else self.info.rotation
        return upright(image, rotation)

    def _decode(self, stream, start: float | None) -> Iterator[av.VideoFrame]:
        try:
            yield from self._decode_frames(stream, start)
        except av.error.InvalidDataError as exc:
            raise InputError(f"{self.path}: corrupt video data after {self.decoded} frames ({reason(exc)})") from exc
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: cannot decode video after {self.decoded} frames ({reason(exc)})") from exc

    def _decode_frames(self, stream, start: float | None) -> Iterator[av.VideoFrame]:
        container = self._container
        assert container is not None
        if self.alpha and stream.codec_context.name in ("vp9", "vp8") and _has_alpha(stream):
            # FFmpeg's native VP9 decoder drops the alpha plane; libvpx reads it. No seeking here:
            # alpha reading is for checking outputs, which are decoded from the top.
            decoder = av.CodecContext.create("libvpx-vp9" if stream.codec_context.name == "vp9" else "libvpx", "r")
            for packet in container.demux(stream):
                yield from decoder.decode(packet)
            return
        frames = container.decode(stream)
        if start is not None and start > 0:
            try:
                container.seek(int(start / stream.time_base), stream=stream, backward=True)
                frames = container.decode(stream)
                first = next(frames, None)
            except av.FFmpegError:
                first = None
            # A broken index can land after ``start``: then decode from the top and skip instead.
            if first is None or first.pts is None or float(first.pts * stream.time_base) > start + SEEK_EPS:
                container.seek(0)
                frames = container.decode(stream)
            else:
                yield first
        yield from frames
