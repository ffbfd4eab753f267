"""``cleanplate train CONFIG``: train or fine-tune a model from a TOML config (resumable)."""

from __future__ import annotations

from pathlib import Path

import click


def _parse_overrides(pairs: tuple[str, ...]) -> dict:
    import tomllib

    from ..errors import InputError

    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def _parse_blend(text: str) -> tuple[str, float]:
    """``PATH`` or ``PATH:T`` (a Windows drive letter is not a weight)."""
    path, sep, weight = text.rpartition(":")
    if sep and path and len(path) > 1:
        try:
            return path, float(weight)
        except ValueError:
            pass
    return text, 0.5


@click.command("train")
@click.argument("config", type=click.Path(path_type=Path))
@click.option("--resume/--no-resume", default=True, show_default=True, help="Continue from the run's last checkpoint.")
@click.option("--init", "init", default=None, help="Start from weights: 'default' (the shipped model) or a checkpoint.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a top-level config value.")
@click.option(
    "--export", "export", type=click.Path(path_type=Path), default=None, help="Also write the final model here."
)
@click.option(
    "--blend",
    "blend",
    default=None,
    metavar="WEIGHTS[:T]",
    help="With --export: interpolate the result towards these weights by T (default 0.5), e.g. the "
    "model the fine-tune started from (keeps what it forgot).",
)
@click.option(
    "--until",
    type=click.IntRange(1),
    default=None,
    metavar="STEP",
    help="Stop at this step of the stage being trained (reproduce a run cut there; the schedule stays).",
)
@click.option("--force", is_flag=True, help="Overwrite --export if it exists.")
def command(
    config: Path,
    resume: bool,
    init: str | None,
    overrides: tuple[str, ...],
    export: Path | None,
    blend: str | None,
    until: int | None,
    force: bool,
) -> None:
    """Train MattingBase then MattingRefine on composited ground-truth subjects (see configs/)."""
    from ..train.config import load_config
    from ..train.export import export_run, initial_weights
    from ..train.loop import Trainer

    blend_with = _parse_blend(blend) if blend else None
    if blend_with is not None and export is None:
        raise click.UsageError("--blend applies to the exported model: give --export too")
    cfg = load_config(config, _parse_overrides(overrides))
    trainer = Trainer(
        cfg, init=initial_weights(init) if init else None, log=lambda m: click.echo(m, err=True), until=until
    )
    last = trainer.run(resume=resume)
    click.echo(f"training state: {last}")
    if export is not None:
        export_run(last, export, force=force, blend=blend_with)
        click.echo(f"model written to {export}")
