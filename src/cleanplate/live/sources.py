"""Frame sources for ``cleanplate live``: a v4l2 camera, any PyAV/OpenCV URL, or a video file.

A camera produces frames whether we are ready or not; matting a stale frame only adds latency.
So live sources are read by a grabber thread that keeps only the newest frame. A file stands in
for a camera (tests, demos) and is read frame by frame without dropping, optionally paced at its
own frame rate (``realtime``).
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import InputError

URL_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class FrameSource:
    """Base: ``read()`` → (uint8 H×W×3 RGB, timestamp seconds) or None at the end; ``close()``."""

    live = True
    name = "source"

    def read(self) -> tuple[np.ndarray, float] | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Grabber:
    """Keeps the newest frame of a blocking ``grab()`` callable, read in a daemon thread."""

    def __init__(self, grab, name: str) -> None:
        self._grab = grab
        self._cond = threading.Condition()
        self._frame: tuple[np.ndarray, float] | None = None
        self._fresh = False
        self._done = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"cleanplate-grab-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._done:
                item = self._grab()
                with self._cond:
                    if item is None:
                        self._done = True
                    else:
                        self._frame, self._fresh = item, True
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - reported by read()
            with self._cond:
                self.error, self._done = exc, True
                self._cond.notify_all()

    def read(self, timeout: float = 10.0) -> tuple[np.ndarray, float] | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._fresh or self._done, timeout=timeout):
                raise InputError(f"no frame from the camera for {timeout:.0f} s")
            if self.error is not None:
                raise InputError(f"camera stopped: {self.error}") from self.error
            if not self._fresh:
                return None
            self._fresh = False
            return self._frame

    def stop(self) -> None:
        self._done = True


class PyAVSource(FrameSource):
    """A camera (v4l2), stream URL or file through PyAV."""

    def __init__(
        self,
        url: str,
        *,
        fmt: str | None = None,
        options: dict[str, str] | None = None,
        live: bool = True,
        realtime: bool = False,
    ) -> None:
        import av

        self.name, self.live, self.realtime = url, live, realtime
        try:
            self._container = av.open(url, format=fmt, options=options or {}, timeout=10.0)
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"cannot open {url}: {getattr(exc, 'strerror', None) or exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{url}: no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._frames = self._container.decode(self._stream)
        self._t0: float | None = None
        self._grabber = _Grabber(self._next, "pyav") if live else None

    def _next(self) -> tuple[np.ndarray, float] | None:
        from ..io.video_reader import snap_rotation, upright

        frame = next(self._frames, None)
        if frame is None:
            return None
        t = float(frame.time) if frame.time is not None else time.monotonic()
        image = frame.to_ndarray(format="rgb24")
        if frame.rotation:
            image = upright(image, snap_rotation(frame.rotation))
        return image, t

    def read(self) -> tuple[np.ndarray, float] | None:
        if self._grabber is not None:
            return self._grabber.read()
        item = self._next()
        if item is not None and self.realtime:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now - item[1]
            delay = self._t0 + item[1] - now
            if delay > 0:
                time.sleep(delay)
        return item

    def close(self) -> None:
        if self._grabber is not None:
            self._grabber.stop()
        self._container.close()


class OpenCVSource(FrameSource):
    """Anything ``cv2.VideoCapture`` opens (a camera index, a GStreamer pipeline, a URL)."""

    def __init__(self, spec: str | int, *, width: int | None = None, height: int | None = None, fps=None) -> None:
        import cv2

        self.name = str(spec)
        self._cap = cv2.VideoCapture(spec)
        if not self._cap.isOpened():
            raise InputError(f"OpenCV cannot open {spec!r}")
        if width and height:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if fps:
            self._cap.set(cv2.CAP_PROP_FPS, fps)
        self._grabber = _Grabber(self._next, "opencv")

    def _next(self) -> tuple[np.ndarray, float] | None:
        import cv2

        ok, frame = self._cap.read()
        if not ok:
            return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), time.monotonic()

    def read(self) -> tuple[np.ndarray, float] | None:
        return self._grabber.read()

    def close(self) -> None:
        self._grabber.stop()
        self._cap.release()


def _device_path(spec: str) -> str | None:
    if re.fullmatch(r"\d+", spec):
        return f"/dev/video{spec}"
    if spec.startswith("/dev/video"):
        return spec
    return None


def open_source(
    spec: str,
    *,
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    input_format: str | None = None,
    realtime: bool = False,
) -> FrameSource:
    """Open ``spec``: '0' or '/dev/video0' (v4l2), 'cv2:SPEC' (OpenCV), a URL, or a video file.

    ``size`` = (width, height) and ``fps`` are requests to the camera; ``input_format`` e.g.
    'mjpeg' (most USB cameras deliver high resolutions only as MJPEG).
    """
    if spec.startswith("cv2:"):
        rest = spec[4:]
        w, h = size or (None, None)
        return OpenCVSource(int(rest) if rest.isdigit() else rest, width=w, height=h, fps=fps)
    device = _device_path(spec)
    if device is not None:
        if not os.path.exists(device):
            raise InputError(f"camera {device} does not exist (list cameras with: v4l2-ctl --list-devices)")
        options: dict[str, str] = {}
        if size:
            options["video_size"] = f"{size[0]}x{size[1]}"
        if fps:
            options["framerate"] = str(fps)
        if input_format:
            options["input_format"] = input_format
        return PyAVSource(device, fmt="v4l2", options=options, live=True)
    if spec.startswith(URL_SCHEMES):
        try:
            return PyAVSource(spec, live=True)
        except InputError:
            return OpenCVSource(spec)  # e.g. a stream only OpenCV's GStreamer backend understands
    path = Path(spec)
    if not path.exists():
        raise InputError(f"source {spec}: no such file, camera or URL")
    from ..io.video_reader import probe

    probe(path)  # one-line errors for corrupt files / no video stream
    return PyAVSource(str(path), live=False, realtime=realtime)
