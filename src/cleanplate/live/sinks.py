"""Where live frames go: a preview window, a virtual camera, a file.

The preview needs a display and an OpenCV build with GUI support (the default dependency is
opencv-python-headless, which has none); the virtual camera needs pyvirtualcam (the ``live``
extra) and, on Linux, the v4l2loopback module. Both are checked when opened and fail with one
line that says what to install.
"""

from __future__ import annotations

import contextlib
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError, OutputError
from ..io.formats import OutputSpec


def display_available() -> bool:
    """True when a window could be shown (a display server on Linux; always elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class PreviewWindow:
    """An OpenCV window; :meth:`key` returns the key pressed since the last frame ('' if none)."""

    def __init__(self, title: str = "cleanplate live") -> None:
        import cv2

        if not display_available():
            raise OutputError("no display for the preview window (headless); use --no-preview with --vcam or -o")
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise MissingDependencyError(
                "the preview window needs OpenCV with GUI support: pip install opencv-python "
                "(the -headless build has no windows), or use --no-preview"
            ) from exc
        self._last_key = ""

    def send(self, frame: np.ndarray) -> None:
        import cv2

        cv2.imshow(self.title, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        code = cv2.waitKey(1)
        self._last_key = chr(code & 0xFF) if code >= 0 else ""
        if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self._last_key = "q"  # window closed with the mouse

    def key(self) -> str:
        key, self._last_key = self._last_key, ""
        return key

    def close(self) -> None:
        import cv2

        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)


class VirtualCamera:
    """Frames to a virtual webcam (pyvirtualcam; v4l2loopback on Linux, OBS on Windows/macOS)."""

    def __init__(self, width: int, height: int, fps: float = 30.0, device: str | None = None) -> None:
        try:
            import pyvirtualcam
        except ImportError as exc:
            raise MissingDependencyError(
                "the virtual camera needs pyvirtualcam: pip install 'cleanplate[live]' "
                "(on Linux also: sudo modprobe v4l2loopback devices=1 exclusive_caps=1)"
            ) from exc
        try:
            self._cam = pyvirtualcam.Camera(width=width, height=height, fps=fps, device=device)
        except RuntimeError as exc:
            raise OutputError(f"cannot open a virtual camera: {exc} (is v4l2loopback loaded?)") from exc
        self.device = self._cam.device
        self.size = (height, width)

    def send(self, frame: np.ndarray) -> None:
        import cv2

        if frame.shape[:2] != self.size:
            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        self._cam.send(np.ascontiguousarray(frame))

    def close(self) -> None:
        self._cam.close()


class FileSink:
    """Record what the session produces (composite or RGBA) to a video file, with real timestamps.

    Timestamps come from the source (file pts, or the camera clock), in milliseconds, so a
    recording from a camera whose rate wanders plays back at the speed it was filmed.
    """

    TIME_BASE = Fraction(1, 1000)

    def __init__(self, spec: OutputSpec, *, force: bool = False, rate: Fraction | None = None) -> None:
        from ..io.video_writer import open_writer

        self.spec = spec
        self.kind = spec.kind
        self._writer = open_writer(spec, time_base=self.TIME_BASE, rate=rate, force=force)
        self._t0: float | None = None

    @property
    def frames(self) -> int:
        return self._writer.frames

    def send(self, frame: np.ndarray, t: float) -> None:
        if self._t0 is None:
            self._t0 = t
        self._writer.write(frame, round((t - self._t0) / self.TIME_BASE))

    def finish(self) -> Path | None:
        return self._writer.finish()

    def abort(self) -> Path | None:
        return self._writer.abort()
