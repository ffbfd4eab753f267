"""The one place where the server touches the rest of cleanplate.

Everything ``cleanplate.serve`` needs from the library goes through the names below, so a
restructure of the library (module moves, split readers/writers) is absorbed here and nowhere
else. The heavy modules (torch, PyAV, OpenCV) are imported on first use, so importing the
server (``cleanplate serve --help``) stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .._version import __version__ as VERSION
from ..errors import CleanplateError, InputError

__all__ = [
    "CleanplateError",
    "InputError",
    "VERSION",
    "VideoProbe",
    "VideoStopped",
    "builtin_models",
    "check_color",
    "load_model",
    "matte_image",
    "parse_plate_frames",
    "plate_fits",
    "plate_warnings",
    "pil_to_rgb",
    "probe_video",
    "run_video",
    "video_output",
]

# Container of a video job's result → file suffix (the library picks codec and preset from it).
VIDEO_FORMATS = {"webm": ".webm", "mov": ".mov", "mp4": ".mp4"}


def load_model(model: str | None, *, device: str = "auto", **refine: Any) -> Any:
    """``cleanplate.load``: a Matter (``.matte``, ``.matte_tensor``, ``.device``, ``.info``)."""
    from ..api import load

    return load(model, device=device, **refine)


def builtin_models() -> list[dict[str, Any]]:
    """Name, description and availability of each built-in model."""
    from ..models.registry import BUILTINS

    return [{"name": m.name, "description": m.description, "available": m.available()} for m in BUILTINS.values()]


def check_color(text: str) -> tuple[int, int, int]:
    """A colour as ``cleanplate`` spells it ('green', '#00ff00', '0,255,0'); InputError otherwise."""
    from ..compose import parse_color

    return parse_color(text)


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Any decoded PIL image → uint8 H×W×3 RGB, as the library's readers do it."""
    from ..io.image import pil_to_rgb as convert

    return convert(img)


def plate_warnings() -> tuple[type[Warning], ...]:
    """The warning classes a client should hear about (the CLI prints them as ``warning:`` lines)."""
    from ..plate import AlignmentWarning, PlateWarning
    from ..plate.auto import NeverSeenWarning

    return (PlateWarning, AlignmentWarning, NeverSeenWarning)


def matte_image(
    matter: Any, src: np.ndarray, plate: np.ndarray, *, align: bool, kind: str, background: Any
) -> np.ndarray:
    """Matte one pair and render one output kind (rgba/alpha/fgr/comp) as a uint8 array."""
    matte = matter.matte(src, plate, align=align)
    return matte.to_array(kind, background)


@dataclass(frozen=True)
class VideoProbe:
    """What the server needs to know about an uploaded clip before accepting it."""

    width: int
    height: int
    duration: float | None
    frames: int | None
    fps: float | None


def probe_video(path: Path) -> VideoProbe:
    """Probe a clip without decoding it all; InputError for anything PyAV cannot read."""
    from ..io.video_reader import probe

    info = probe(path, decode_first=False)  # header only: nothing is decoded before the limits are checked
    return VideoProbe(
        width=info.width,
        height=info.height,
        duration=info.duration,
        frames=info.estimated_frames,
        fps=float(info.rate) if info.rate else None,
    )


def video_output(kind: str, fmt: str, path_stem: Path) -> tuple[Any, Path]:
    """The library's OutputSpec for ``kind`` in container ``fmt``, written to ``path_stem`` + suffix.

    Raises InputError for impossible pairs (rgba in .mp4), with the library's own message.
    """
    from ..io.formats import resolve_output

    path = path_stem.with_suffix(VIDEO_FORMATS[fmt])
    return resolve_output(path, kind), path


class VideoStopped(Exception):
    """Raised from the progress callback to stop a running video job (cancel or shutdown)."""


def run_video(
    matter: Any,
    source: Path,
    plate: Path | np.ndarray | None,
    output: Any,
    *,
    plate_frames: tuple[int, int | None] | None,
    background: Any,
    align: bool,
    smooth: float,
    on_frames: Callable[[int], None],
) -> tuple[int, list[str]]:
    """Run :func:`cleanplate.pipeline.video.process_video` for one output; returns the frame count
    and what the CLI would print about the result as warnings (e.g. frames whose alignment fell back).

    ``on_frames`` is called after every batch with the frames done so far; raising
    :class:`VideoStopped` from it stops the job (the library keeps a ``.partial`` file, which the
    caller removes).
    """
    from ..pipeline.video import VideoInterrupted, VideoOptions, process_video

    options = VideoOptions(
        background=background,
        align=align,
        smooth=smooth,
        progress=False,
        force=True,
        on_batch=on_frames,
    )
    try:
        result = process_video(matter, source, [output], plate, plate_frames=plate_frames, options=options)
    except VideoInterrupted as exc:  # Ctrl-C delivered to this thread: treat like a stop
        raise VideoStopped("interrupted") from exc
    lines = list(result.warnings)
    if result.align is not None and (note := result.align.note()):
        lines.append(note)
    return result.frames, lines


def parse_plate_frames(text: str) -> tuple[int, int | None]:
    """``'A:B'`` → frame range of the input used as the plate (InputError when malformed)."""
    from ..plate.load import parse_frame_range

    return parse_frame_range(text)


def plate_fits(plate_size: tuple[int, int], frame_size: tuple[int, int]) -> bool:
    """Whether a plate of (w, h) can be used for frames of (w, h) without alignment (same aspect)."""
    from ..plate.fit import aspect_matches

    return aspect_matches(plate_size[::-1], frame_size[::-1])
