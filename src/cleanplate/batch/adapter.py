"""The one place ``cleanplate.batch`` touches the rest of cleanplate.

Why: the batch runner reuses the image and video pipelines as they are, through a handful of
stable entry points. Keeping every such import here means a restructure of the package (api split,
io/video split, model registry) is absorbed by editing this file only. Heavy modules (torch, the
video pipeline) are imported inside the functions, so ``cleanplate batch --help`` and the job
parsing stay fast and the local path never imports Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import CleanplateError, InputError, MissingDependencyError, OutputError
from ..io.atomic import check_dir_creatable, ensure_dir, temp_path_for
from ..io.formats import PRESETS, OutputSpec, resolve_output, sequence_regex
from ..io.image import IMAGE_SUFFIXES as IMAGE_EXTS
from ..options import OUTPUT_SUFFIX, parse_time

__all__ = [
    "IMAGE_EXTS",
    "OUTPUT_SUFFIX",
    "PRESETS",
    "CleanplateError",
    "InputError",
    "MissingDependencyError",
    "OutputError",
    "OutputSpec",
    "audio_carrier",
    "check_dir_creatable",
    "ensure_dir",
    "has_audio",
    "image_background",
    "is_color",
    "load_matter",
    "matte_image",
    "parse_time",
    "process_video",
    "read_plate_image",
    "resolve_output",
    "save_matte",
    "sequence_regex",
    "temp_path_for",
    "video_options",
]


def is_color(spec: object) -> bool:
    """A colour name, ``#rrggbb`` or ``r,g,b`` (else a file path)."""
    from ..compose import is_color as _is_color

    return _is_color(spec)


def load_matter(params: dict[str, Any]) -> Any:
    """``cleanplate.load`` from the CLI's matting options (model, device, refine settings)."""
    from ..api import load_from_options

    return load_from_options(params)


def matte_image(matter: Any, source: Path, plate: Any, *, align: bool = False) -> Any:
    """One :class:`cleanplate.Matte` for an image path against a plate (path or array)."""
    return matter.matte(source, plate, align=align)


def read_plate_image(path: Path) -> Any:
    """A plate image decoded once, so items sharing it do not decode it again."""
    from ..io.image import read_image

    return read_image(path)


def image_background(spec: str | None) -> Any:
    """What ``Matte.save(kind='comp')`` takes: a colour string, or the decoded background image."""
    from ..compose import resolve_background

    return resolve_background(spec)


def save_matte(matte: Any, path: Path, kind: str, background: Any) -> Path:
    """Write one image output atomically (temp + rename). Overwriting was decided by the pre-flight."""
    return matte.save(path, kind, background=background if background is not None else "green", force=True)


def video_options(**kwargs: Any) -> Any:
    """A :class:`cleanplate.pipeline.video.VideoOptions`."""
    from ..pipeline.video import VideoOptions

    return VideoOptions(**kwargs)


def process_video(
    matter: Any,
    source: Path,
    outputs: Sequence[OutputSpec],
    plate: Any,
    *,
    plate_frames: tuple[int, int | None] | None,
    options: Any,
) -> Any:
    """:func:`cleanplate.pipeline.video.process_video` (one pass, one or several outputs)."""
    from ..pipeline.video import process_video as _process

    return _process(matter, source, outputs, plate, plate_frames=plate_frames, options=options)


def audio_carrier(source: Path, output: Any, *, end: float | None, offset: float, reencode: str | None) -> Any:
    """The video writer's audio carrier: copies (or re-encodes) the source's audio into ``output``."""
    from ..io.audio import AudioCarrier

    return AudioCarrier(source, output, start=0.0, end=end, offset=offset, reencode=reencode)


def has_audio(path: Path) -> bool:
    from ..io.audio import audio_codec_name

    return audio_codec_name(path) is not None
