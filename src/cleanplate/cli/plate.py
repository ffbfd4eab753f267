"""``cleanplate plate``: build a clean plate from a clip where the subject moves, to inspect or reuse.

The same estimate as ``cleanplate video --plate auto`` (:mod:`cleanplate.plate.auto`), written as
images: the plate, and optionally its confidence map and never-seen mask. Every output is checked
before the model loads, and written atomically.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from .options import auto_plate_options, force_option, load_matter, matting_options


@click.command("plate")
@click.argument("clip", type=click.Path(path_type=Path))
@click.option("--output", "-o", "output", required=True, type=click.Path(path_type=Path), help="Plate image (.png).")
@click.option(
    "--confidence",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the confidence map (grey: white = the background was seen often and agreed).",
)
@click.option(
    "--never-seen",
    "never_seen",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the never-seen mask (white = the background never showed; the plate is inpainted there).",
)
@click.option("--align", is_flag=True, help="Drifting/handheld camera: register the frames before the median.")
@click.option("--start", type=float, default=None, help="First second of CLIP to sample.")
@click.option("--end", type=float, default=None, help="Last second (exclusive).")
@auto_plate_options
@matting_options
@force_option
def command(
    clip: Path,
    output: Path,
    confidence: Path | None,
    never_seen: Path | None,
    align: bool,
    start: float | None,
    end: float | None,
    auto_frames: int,
    auto_rounds: int,
    force: bool,
    **model_params: Any,
) -> None:
    """Build a clean plate from CLIP (a video where the subject moves) and write it to -o PLATE.

    \b
    Examples:
      cleanplate plate walk.mp4 -o plate.png --confidence conf.png --never-seen never.png
      cleanplate plate handheld.mp4 -o plate.png --align --model classical
    """
    from ..io.atomic import check_output
    from ..io.image import is_image_path, write_format, write_image
    from ..io.video_reader import probe
    from ..plate.auto import AutoPlateOptions, NeverSeenWarning, plate_from_subject_clip

    if not clip.exists():
        raise InputError(f"{clip}: no such file")
    if is_image_path(clip):
        raise InputError(f"{clip} is an image; a plate from the clip needs a video where the subject moves")
    outputs = {"plate": output, "confidence": confidence, "never_seen": never_seen}
    chosen = {kind: path for kind, path in outputs.items() if path is not None}
    seen: dict[Path, str] = {}
    for kind, path in chosen.items():
        write_format(path)
        check_output(path, force)
        if path.resolve() in seen:
            raise InputError(f"{path} is given twice (as {seen[path.resolve()]} and {kind})")
        seen[path.resolve()] = kind
    probe(clip)  # a corrupt or audio-only file fails before the model loads
    options = AutoPlateOptions(frames=auto_frames, rounds=auto_rounds, align=align).check()
    matter = load_matter(model_params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NeverSeenWarning)
        result = plate_from_subject_clip(clip, matter, options=options, start=start, end=end)
    for w in caught:
        click.echo(f"cleanplate: warning: {w.message}", err=True)
    images = {"plate": result.plate, "confidence": result.confidence, "never_seen": result.never_seen}
    for kind, path in chosen.items():
        write_image(path, images[kind], force=force)
    click.echo(
        f"cleanplate: wrote {', '.join(map(str, chosen.values()))} ({result.frames} frames, {result.rounds} rounds, "
        f"view of frame {result.reference}; never seen: {100 * result.never_seen_fraction:.2f} %)",
        err=True,
    )
