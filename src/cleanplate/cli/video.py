"""``cleanplate video``: matte a video against a clean plate, writing one or several outputs in one pass.

Every check that can fail (input decodable, plate usable and of the right aspect, outputs free,
encoders present, model loadable) runs before the first frame is processed. Ctrl-C or a crash
mid-way closes every output properly and keeps it as ``NAME.partial.EXT`` (one line says so);
the final name only ever holds a complete result.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from ..errors import CleanplateError
from ..io.formats import PRESETS
from ..options import parse_time
from .options import (
    auto_plate_options,
    force_option,
    frame_range,
    keep_shadow_value,
    load_matter,
    matte_control_options,
    matte_controls,
    matting_options,
    plate_frames_option,
    smooth_option,
    split_plate_outputs,
)

EXIT_INTERRUPTED = 130

OUTPUT_HELP = (
    "Output, repeatable: [KIND=]PATH. KIND is rgba (colour + alpha), alpha (matte only), comp (composite over "
    "--background) or fgr (foreground colour). Without KIND: .mov/.webm/.mkv/folder → rgba, .mp4 → comp. "
    "PATH: .mov (ProRes 4444 for rgba, ProRes 422 otherwise), .webm (VP9, with alpha for rgba), .mp4 (H.264), "
    ".mkv (FFV1 lossless), or a folder / out/%06d.png pattern (PNG frames; --format png16 for 16-bit) / "
    "out/%05d.exr (OpenEXR, half float, premultiplied)."
)


class TimeType(click.ParamType):
    """A time in seconds (``12.5``) or as ``[hh:]mm:ss[.ms]``."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            seconds = float(value)
        else:
            seconds = parse_time(str(value))
            if seconds is None:
                self.fail(f"{value!r} is not a time: use seconds (12.5) or [hh:]mm:ss[.ms]", param, ctx)
        if seconds < 0:
            self.fail(f"{value!r} is negative", param, ctx)
        return seconds


def collect_outputs(outputs: tuple[str, ...], save: str | None, format_name: str | None) -> list:
    """``-o`` items and the ``--save`` list → OutputSpecs (at least one)."""
    from ..io.formats import parse_output, parse_save

    specs = [parse_output(text, format_name) for text in outputs]
    if save:
        specs += parse_save(save, format_name)
    if not specs:
        raise click.UsageError("give at least one output: -o out.mov, or --save comp=out.mp4,rgba=out.mov")
    return specs


def report_interrupted(result: Any) -> None:
    """One line for Ctrl-C: how many frames were done and where they are."""
    if result.outputs:
        where = ", ".join(str(p) for p in result.outputs)
        click.echo(
            f"cleanplate: interrupted after {result.frames} frames; the frames done are in {where} (valid, playable)",
            err=True,
        )
    else:
        click.echo("cleanplate: interrupted before any frame was written; nothing kept", err=True)


def partial_note(exc: BaseException) -> str:
    result = getattr(exc, "partial", None)
    if result is None or not result.outputs:
        return ""
    where = ", ".join(str(p) for p in result.outputs)
    return f"; the {result.frames} frames done are kept in {where}"


@click.command("video")
@click.argument("source", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--plate",
    "-p",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Clean plate: an image, a video of the empty scene (per-pixel temporal median), or 'auto': built from "
    "INPUT itself while the subject moves (a file named auto: ./auto).",
)
@plate_frames_option("Build the plate from frames A..B-1 of INPUT itself (temporal median), e.g. 0:30.")
@click.option("--output", "-o", "outputs", multiple=True, metavar="[KIND=]PATH", help=OUTPUT_HELP)
@click.option("--save", metavar="KIND=PATH,...", help="Several outputs at once, e.g. comp=out.mp4,rgba=out.mov.")
@click.option(
    "--format",
    "format_name",
    type=click.Choice(list(PRESETS)),
    default=None,
    help="Encoding preset instead of the one the extension implies (e.g. h265 for .mp4, ffv1 for .mkv).",
)
@click.option(
    "--background",
    "-b",
    default=None,
    metavar="COLOR|IMAGE|VIDEO|blur",
    help="Background for comp outputs: colour (green, #00ff00, 0,255,0), image, video, or blur. [default: green]",
)
@click.option(
    "--bg-loop/--bg-hold",
    "bg_loop",
    default=True,
    show_default=True,
    help="A background video shorter than INPUT loops, or holds its last frame (a longer one is cut).",
)
@click.option("--start", type=TimeType(), default=None, help="Start time (seconds or [hh:]mm:ss[.ms]).")
@click.option("--end", type=TimeType(), default=None, help="End time, exclusive.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Frames per forward pass. [default: 1 on CPU, 4 on CUDA]",
)
@click.option("--align", is_flag=True, help="Handheld/drifting camera: align the plate to every frame.")
@click.option("--match-color", is_flag=True, help="Match the plate's exposure and white balance to every frame.")
@smooth_option
@matte_control_options
@auto_plate_options
@click.option("--no-audio", is_flag=True, help="Do not carry the input's audio into the outputs.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@matting_options
@force_option
def command(
    source: Path,
    plate: Path | None,
    plate_frames: str | None,
    outputs: tuple[str, ...],
    save: str | None,
    format_name: str | None,
    background: str | None,
    bg_loop: bool,
    start: float | None,
    end: float | None,
    batch_size: int | None,
    align: bool,
    match_color: bool,
    smooth: float,
    auto_frames: int,
    auto_rounds: int,
    no_audio: bool,
    quiet: bool,
    force: bool,
    **model_params: Any,
) -> None:
    """Matte INPUT against a clean plate; write alpha video, composites or PNG frames.

    \b
    Examples:
      cleanplate video take.mp4 --plate empty.jpg -o take.mov                 # ProRes 4444 with alpha
      cleanplate video take.mp4 --plate empty.mp4 --save comp=out.mp4,alpha=matte.mp4 -b beach.jpg
      cleanplate video take.mp4 --plate-frames 0:48 -o frames/ --start 2 --end 10 --align --smooth
      cleanplate video walk.mp4 --plate auto -o frames/%05d.exr --save never_seen=never.png,shadow=shadow/
    """
    from ..pipeline import VideoInterrupted, VideoOptions, prepare_video
    from ..plate.auto import AutoPlateOptions

    if (plate is None) == (plate_frames is None):
        raise click.UsageError("give exactly one of --plate PLATE or --plate-frames A:B")
    if start is not None and end is not None and end <= start:
        raise click.BadParameter(f"--end ({end}s) must be after --start ({start}s)", param_hint="'--end'")
    controls = matte_controls(model_params)
    keep_shadow = keep_shadow_value(model_params)
    items, plate_outputs = split_plate_outputs([*outputs, *(save.split(",") if save else [])])
    specs = collect_outputs(tuple(items), None, format_name)
    options = VideoOptions(
        start=start,
        end=end,
        batch_size=batch_size,
        background=background,
        background_loop=bg_loop,
        align=align,
        match_color=match_color,
        smooth=smooth,
        controls=controls,
        keep_shadow=keep_shadow,
        auto_plate=AutoPlateOptions(frames=auto_frames, rounds=auto_rounds),
        plate_outputs=plate_outputs,
        audio=not no_audio,
        force=force,
        progress=not quiet,
    )
    # Checked and loaded once (input, range, outputs, plate, background), all before the model loads.
    plate_arg: Any = "auto" if plate is not None and str(plate) == "auto" else plate
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job = prepare_video(
            source,
            specs,
            plate_arg,
            plate_frames=None if plate_frames is None else frame_range(plate_frames),
            options=options,
        )
    for w in caught:
        click.echo(f"cleanplate: warning: {source}: {w.message}", err=True)
    if model_params.get("backbone_scale") is not None:
        from ..options import check_backbone_scale

        check_backbone_scale(model_params["backbone_scale"], job.info.height, job.info.width, "--backbone-scale")
    _clean_stale_temps(specs)
    if not quiet and any(s.is_sequence for s in specs) and job.info.audio_codec and not no_audio:
        click.echo("cleanplate: note: PNG frame folders carry no audio", err=True)
    matter = load_matter(model_params)
    if job.auto and not quiet:
        click.echo(f"cleanplate: building the plate from {source.name} ({auto_frames} frames sampled)", err=True)
    try:
        with _plate_warnings(source):
            result = job.run(matter)
    except VideoInterrupted as stop:
        report_interrupted(stop.result)
        sys.exit(EXIT_INTERRUPTED)
    except CleanplateError as exc:
        note = partial_note(exc)
        if note:
            exc.args = (f"{exc}{note}",)
        raise
    except Exception as exc:
        note = partial_note(exc)
        if note:
            click.echo(f"cleanplate: {note[2:]}", err=True)
        raise
    for line in result.warnings:  # even with --quiet: the result is not what the input promised
        click.echo(f"cleanplate: warning: {line}", err=True)
    if not quiet:
        _summary(result)


@contextlib.contextmanager
def _plate_warnings(source: Path):
    """A never-seen warning of ``--plate auto`` and a shifted plate's warning, each as one
    ``cleanplate: warning:`` line."""
    from ..plate.auto import NeverSeenWarning
    from ..plate.fit import PlateWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NeverSeenWarning)
        warnings.simplefilter("always", PlateWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, NeverSeenWarning):
                    click.echo(f"cleanplate: warning: {w.message}", err=True)
                elif issubclass(w.category, PlateWarning):
                    click.echo(f"cleanplate: warning: {source}: {w.message}", err=True)
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _clean_stale_temps(specs: list) -> None:
    """Hidden temp files beside the outputs, left by a run that was killed (SIGKILL), are removed."""
    from ..io.atomic import remove_stale_temp_files

    removed, freed = remove_stale_temp_files(spec.path for spec in specs if not spec.is_sequence)
    if removed:
        click.echo(
            f"cleanplate: note: removed {removed} temp file(s) ({freed / 2**20:.1f} MiB) left by an interrupted run",
            err=True,
        )


def _summary(result: Any) -> None:
    where = ", ".join(str(p) for p in result.outputs)
    click.echo(f"cleanplate: wrote {result.frames} frames ({result.fps:.1f} fps): {where}", err=True)
    if result.align is not None and (note := result.align.note()):
        click.echo(f"cleanplate: note: {note}", err=True)
    for note in result.notes:
        click.echo(f"cleanplate: note: {note}", err=True)
