"""Video in and out: :mod:`.video_reader` (probe, decode) and :mod:`.video_writer` (encode, partial files).

One import path for both, kept for code written before they were split.
"""

from .video_reader import Frame, VideoInfo, VideoReader, probe, snap_rotation, upright
from .video_writer import (
    PARTIAL_TAG,
    AudioSource,
    FrameWriter,
    SequenceWriter,
    VideoFileWriter,
    check_writable,
    open_writer,
    partial_path,
)

__all__ = [
    "PARTIAL_TAG",
    "AudioSource",
    "Frame",
    "FrameWriter",
    "SequenceWriter",
    "VideoFileWriter",
    "VideoInfo",
    "VideoReader",
    "check_writable",
    "open_writer",
    "partial_path",
    "probe",
    "snap_rotation",
    "upright",
]
