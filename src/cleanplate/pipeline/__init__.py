"""Video processing: plates from clips, per-frame alignment and colour matching, temporal smoothing,
and the threaded decode → infer → encode pipeline (:func:`process_video`)."""

from ..plate.color import ColorMatcher, channel_gains
from ..plate.load import load_plate, parse_frame_range, plate_from_clip, temporal_median
from ..plate.track import AlignStats, PlateAligner
from .background import Background
from .smooth import MatteSmoother, flicker
from .video import VideoInterrupted, VideoOptions, VideoResult, check_outputs, process_video

__all__ = [
    "AlignStats",
    "Background",
    "ColorMatcher",
    "MatteSmoother",
    "PlateAligner",
    "VideoInterrupted",
    "VideoOptions",
    "VideoResult",
    "channel_gains",
    "check_outputs",
    "flicker",
    "load_plate",
    "parse_frame_range",
    "plate_from_clip",
    "process_video",
    "temporal_median",
]
