"""Everything about the clean plate, in one room.

- :mod:`.load`: a plate from an image, a clip of the empty scene, or a range of the input's frames;
- :mod:`.fit`: the plate at the frame's size (same aspect resized, another aspect refused);
- :mod:`.geometry`: features, matching, robust fits, plausibility checks and warping, shared by
  :mod:`.align` (one image), :mod:`.track` (every frame of a video) and the classical keyer;
- :mod:`.color`: the plate's exposure and white balance matched to each frame.

Names are imported on first use, so the keyer's ``from cleanplate.plate import geometry`` loads
neither PyAV nor the colour matcher.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

_LAZY = {
    "load_plate": ".load",
    "plate_from_clip": ".load",
    "temporal_median": ".load",
    "parse_frame_range": ".load",
    "aspect_matches": ".fit",
    "match_plate": ".fit",
    "PlateWarning": ".fit",
    "ASPECT_TOLERANCE": ".fit",
    "Alignment": ".align",
    "AlignmentWarning": ".align",
    "PlateCoverageWarning": ".align",
    "align_plate": ".align",
    "estimate_homography": ".align",
    "trimmed_residual": ".geometry",
    "AlignStats": ".track",
    "PlateAligner": ".track",
    "ColorMatcher": ".color",
    "channel_gains": ".color",
}
__all__ = [
    "ASPECT_TOLERANCE",
    "AlignStats",
    "Alignment",
    "AlignmentWarning",
    "ColorMatcher",
    "PlateAligner",
    "PlateCoverageWarning",
    "PlateWarning",
    "align_plate",
    "aspect_matches",
    "channel_gains",
    "estimate_homography",
    "load_plate",
    "match_plate",
    "parse_frame_range",
    "plate_from_clip",
    "temporal_median",
    "trimmed_residual",
]

if TYPE_CHECKING:
    from .align import Alignment, AlignmentWarning, PlateCoverageWarning, align_plate, estimate_homography
    from .color import ColorMatcher, channel_gains
    from .fit import ASPECT_TOLERANCE, PlateWarning, aspect_matches, match_plate
    from .geometry import trimmed_residual
    from .load import load_plate, parse_frame_range, plate_from_clip, temporal_median
    from .track import AlignStats, PlateAligner


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
