"""Live matting: camera (or file) → matte → preview window, virtual camera, file."""

from .session import FpsMeter, LiveOptions, LiveSession, LiveStats, draw_text
from .sinks import FileSink, PreviewWindow, VirtualCamera, display_available
from .sources import FrameSource, OpenCVSource, PyAVSource, open_source

__all__ = [
    "FileSink",
    "FpsMeter",
    "FrameSource",
    "LiveOptions",
    "LiveSession",
    "LiveStats",
    "OpenCVSource",
    "PreviewWindow",
    "PyAVSource",
    "VirtualCamera",
    "display_available",
    "draw_text",
    "open_source",
]
