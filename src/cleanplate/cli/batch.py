"""``cleanplate batch``: a folder or manifest of images and videos → OUTDIR, resumable, locally or on Ray.

Every check that can fail without decoding pixels (inputs, plates, options, output clashes,
outputs the batch did not write) runs before the model loads. A failing item is reported with
one line and the others go on; the run ends with a table and exits 1 if any item failed, 130 on
Ctrl-C (the ledger stays consistent and the next run resumes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..batch.adapter import PRESETS
from .options import force_option, matting_options, smooth_option

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
SAVE_KINDS = ("rgba", "alpha", "fgr", "comp", "err", "ref")


def _parse_save(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    from .image import parse_save

    return tuple(parse_save(value, SAVE_KINDS))


@click.command("batch")
@click.argument("jobs", metavar="JOBS", type=click.Path(path_type=Path))
@click.option("--output", "-o", "outdir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--plate", "-p", type=click.Path(dir_okay=False, path_type=Path), help="One clean plate for every input.")
@click.option(
    "--plate-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder of plates matched by file stem."
)
@click.option(
    "--save",
    default=None,
    metavar="LIST",
    help="Outputs per item unless its manifest row says: rgba, alpha, fgr, comp (images and videos), err, ref "
    "(images). [default: rgba; rgba,comp with --background]",
)
@click.option(
    "--format",
    "format_name",
    type=click.Choice(list(PRESETS)),
    default=None,
    help="Video preset for outputs named by kind. [default: .mov: ProRes 4444 for rgba, ProRes 422 HQ otherwise]",
)
@click.option("--background", "-b", default=None, metavar="COLOR|IMAGE|VIDEO|blur", help="Background for comp.")
@click.option("--align", is_flag=True, help="Align a handheld plate to every image / frame.")
@click.option("--match-color", is_flag=True, help="Videos: match the plate's exposure and white balance per frame.")
@smooth_option
@click.option("--no-audio", is_flag=True, help="Videos: do not carry the input's audio.")
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Tries per item in a run for unexpected errors (input errors fail at once; a re-run retries failed items).",
)
@click.option("--verify", is_flag=True, help="Checksum every finished output before skipping it (default: size+mtime).")
@click.option("--dry-run", is_flag=True, help="Check everything and say what would run; write nothing.")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Run on Ray: bare --ray starts a local Ray; 'auto' or ray://HOST:10001 joins a cluster "
    "(needs cleanplate[ray]).",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Ray: image actors. [default: by resources]")
@click.option("--cpus-per-worker", type=click.FloatRange(min=0.0), default=1.0, show_default=True, help="Ray.")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0.0), default=0.0, show_default=True, help="Ray.")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Ray: images per actor call."
)
@click.option(
    "--segment-frames",
    type=click.IntRange(min=1),
    default=1500,
    show_default=True,
    help="Ray: cut videos at the first keyframe after every N frames (intraframe outputs only).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@matting_options
@force_option
def command(
    jobs: Path,
    outdir: Path,
    plate: Path | None,
    plate_dir: Path | None,
    save: str | None,
    format_name: str | None,
    background: str | None,
    align: bool,
    match_color: bool,
    smooth: float,
    no_audio: bool,
    max_attempts: int,
    verify: bool,
    dry_run: bool,
    ray_address: str | None,
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float,
    batch_size: int,
    segment_frames: int,
    quiet: bool,
    force: bool,
    **model_params: Any,
) -> None:
    """Matte every image and video in JOBS (a folder, or a CSV / JSONL manifest) into OUTDIR.

    \b
    A folder pairs each input with NAME_plate.* beside it, or --plate / --plate-dir.
    A manifest has a row per item: input, plate (or plate_frames), outputs, and options
    (background, align, match_color, smooth, start, end, audio, format, id).
    Re-running skips finished items and retries failed ones (ledger: OUTDIR/.cleanplate/).

    \b
    Examples:
      cleanplate batch shots/ --plate-dir plates/ -o out/ --save rgba,alpha
      cleanplate batch jobs.csv -o out/ --ray                        # local Ray, all CPUs
      cleanplate batch jobs.jsonl -o /shared/out --ray auto --gpus-per-worker 1
    """
    from ..batch import BatchConfig, JobDefaults, RayOptions, load_jobs, run_batch

    if plate is not None and plate_dir is not None:
        raise click.UsageError("give at most one of --plate PLATE or --plate-dir DIR")
    if ray_address is None and (workers is not None or gpus_per_worker):
        raise click.UsageError("--workers and --gpus-per-worker apply to --ray runs")
    options: dict[str, Any] = {}
    if background is not None:
        options["background"] = background
    if align:
        options["align"] = True
    if match_color:
        options["match_color"] = True
    if smooth:
        options["smooth"] = smooth
    if no_audio:
        options["audio"] = False
    defaults = JobDefaults(
        outdir=outdir,
        plate=plate,
        plate_dir=plate_dir,
        save=_parse_save(save),
        format_name=format_name,
        options=options,
    )
    items = load_jobs(jobs, defaults)
    ray = None
    if ray_address is not None:
        ray = RayOptions(
            address=ray_address,
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
            batch_size=batch_size,
            segment_frames=segment_frames,
        )
        if not dry_run:
            _check_ray()
    config = BatchConfig(
        outdir=outdir,
        model_params=dict(model_params),
        force=force,
        max_attempts=max_attempts,
        verify=verify,
        ray=ray,
        progress=not quiet,
    )
    if dry_run:
        _dry_run(items, config)
        return
    summary = run_batch(items, config)
    click.echo(summary.table(), err=True)
    for note in summary.notes:
        click.echo(f"cleanplate: note: {note}", err=True)
    if summary.interrupted:
        click.echo("cleanplate: interrupted; the ledger is consistent: run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if summary.failed:
        sys.exit(EXIT_FAILED)


def _check_ray() -> None:
    import importlib.util

    from ..errors import MissingDependencyError

    if importlib.util.find_spec("ray") is None:
        raise MissingDependencyError("--ray needs Ray: pip install 'cleanplate[ray]'")


def _dry_run(items: list, config: Any) -> None:
    """The pre-flight and the resume decision, without loading a model or writing outputs."""
    from ..batch.ledger import DONE, Ledger, check_output, ledger_exists

    done = 0
    if ledger_exists(config.outdir):
        with Ledger(config.outdir) as ledger:
            records = ledger.records()
        for item in items:
            rec = records.get(item.id)
            if rec is not None and rec.state == DONE and rec.fingerprint == item.fingerprint(config.model_key):
                done += all(check_output(o) is None for o in rec.outputs)
    n_img = sum(i.media == "image" for i in items)
    click.echo(
        f"cleanplate: {len(items)} items ({n_img} images, {len(items) - n_img} videos): "
        f"{done} already done, {len(items) - done} to run into {config.outdir}",
        err=True,
    )
