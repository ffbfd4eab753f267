"""Frames through a model: the per-frame step shared by video and live, and the video pipeline.

- :mod:`.frame`: :class:`FrameStep`, plate → colour match → matte → smooth → render for a batch;
- :mod:`.video`: :func:`prepare_video` checks a job once, :meth:`VideoJob.run` runs the threaded
  decode → infer → encode pipeline (:func:`process_video` does both);
- :mod:`.background`, :mod:`.render`, :mod:`.smooth`, :mod:`.workers`: its parts.

Plates (loading, alignment, colour matching) are :mod:`cleanplate.plate`'s; their names are
re-exported here for code written before they moved.
"""

from ..plate.color import ColorMatcher, channel_gains
from ..plate.load import load_plate, parse_frame_range, plate_from_clip, temporal_median
from ..plate.track import AlignStats, PlateAligner
from .background import Background
from .frame import FrameOptions, FrameStep, Mattes
from .smooth import MatteSmoother, flicker
from .video import (
    VideoInterrupted,
    VideoJob,
    VideoOptions,
    VideoResult,
    check_outputs,
    prepare_video,
    process_video,
)

__all__ = [
    "AlignStats",
    "Background",
    "ColorMatcher",
    "FrameOptions",
    "FrameStep",
    "MatteSmoother",
    "Mattes",
    "PlateAligner",
    "VideoInterrupted",
    "VideoJob",
    "VideoOptions",
    "VideoResult",
    "channel_gains",
    "check_outputs",
    "flicker",
    "load_plate",
    "parse_frame_range",
    "plate_from_clip",
    "prepare_video",
    "process_video",
    "temporal_median",
]
