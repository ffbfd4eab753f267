"""Moved to :mod:`cleanplate.plate.load`; this alias keeps old imports working."""

from ..io.image import IMAGE_SUFFIXES, is_image_path
from ..plate.load import MAX_PLATE_FRAMES, _EvenSample, load_plate, parse_frame_range, plate_from_clip, temporal_median

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PLATE_FRAMES",
    "_EvenSample",
    "is_image_path",
    "load_plate",
    "parse_frame_range",
    "plate_from_clip",
    "temporal_median",
]
