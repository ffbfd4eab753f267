"""``cleanplate bench``: ms/frame of each backbone and backend against the straightforward eager model."""

from __future__ import annotations

import click

from ..options import BACKBONES, BACKENDS, PRECISIONS, REFINE_MODES
from .options import ScaleType, model_option

BACKEND_CHOICES = BACKENDS
BENCH_PRECISIONS = tuple(p for p in PRECISIONS if p != "fp16")  # the bench runs on CPU by default; fp16 needs CUDA


def _csv(choices: tuple[str, ...] | None = None):
    def convert(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
        items = [v.strip().lower() for v in value.split(",") if v.strip()]
        if not items:
            raise click.BadParameter("give at least one value")
        if choices is not None:
            for item in items:
                if item not in choices:
                    raise click.BadParameter(f"{item!r} is not one of {', '.join(choices)}")
        return list(dict.fromkeys(items))

    return convert


@click.command("bench")
@model_option
@click.option(
    "--backbone",
    default="mobilenetv2",
    show_default=True,
    callback=_csv(BACKBONES),
    help=f"Comma-separated backbones ({', '.join(BACKBONES)}); random weights unless --model is given.",
)
@click.option("--sizes", default="720p,1080p", show_default=True, callback=_csv(), help="720p, 1080p, 4k or HxW.")
@click.option(
    "--backend",
    default="torch,onnxruntime",
    show_default=True,
    callback=_csv(BACKEND_CHOICES),
    help="Backends to time besides the eager reference (always timed).",
)
@click.option("--repeat", type=click.IntRange(1), default=5, show_default=True, help="Timed runs per variant.")
@click.option("--warmup", type=click.IntRange(0), default=1, show_default=True, help="Untimed runs first.")
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads [default: torch's].")
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True)
@click.option("--backbone-scale", type=ScaleType(), default=None, help="[default: 1/4, 1/8 above 2560 px]")
@click.option("--refine-mode", type=click.Choice(REFINE_MODES), default="sampling", show_default=True)
@click.option("--sample-pixels", type=click.IntRange(min=16), default=80_000, show_default=True)
@click.option(
    "--precision",
    type=click.Choice(BENCH_PRECISIONS),
    default="fp32",
    show_default=True,
    help="Of the torch backend; bf16 is outside the 1e-4 parity (see the README).",
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the torch backend's base network.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N] (onnxruntime: CUDA provider if any).")
def command(
    model: str | None,
    backbone: list[str],
    sizes: list[str],
    backend: list[str],
    repeat: int,
    warmup: int,
    threads: int | None,
    batch: int,
    backbone_scale: float | None,
    refine_mode: str,
    sample_pixels: int,
    precision: str,
    compile_: bool,
    device: str,
) -> None:
    """Time the eager model and the optimized backends on synthetic frames; print a ratio table.

    All variants run interleaved in one process on the same frame, so other load on the machine
    slows them alike; the table also shows how far each backend's outputs are from eager's.
    """
    from ..api import auto_backbone_scale, resolve_device
    from ..errors import InputError
    from ..speed import bench_model, format_table, machine_line, parse_size, run_benchmark
    from ..speed import threads as use_threads

    dev = resolve_device(device)
    parsed = [parse_size(s) for s in sizes]
    refine = {"refine_mode": refine_mode, "refine_sample_pixels": sample_pixels}
    models = []
    if model is not None:
        from ..models.registry import create_model

        net, info = create_model(model, **refine)
        if info.get("architecture") != "MattingRefine":
            raise InputError(f"{model}: bench needs a MattingRefine checkpoint")
        models.append(net)
    else:
        models = [bench_model(b, **refine) for b in backbone]
    timings = []
    with use_threads(threads):
        click.echo(f"# {machine_line()}", err=True)
        for net in models:
            for label, (h, w) in parsed:
                net.backbone_scale = backbone_scale or auto_backbone_scale(h, w)
                timings += run_benchmark(
                    net,
                    (h, w),
                    label=label,
                    variants=backend,
                    repeat=repeat,
                    warmup=warmup,
                    batch=batch,
                    precision=precision,
                    compile=compile_,
                    device=dev,
                    progress=lambda msg: click.echo(msg, err=True),
                )
    click.echo(format_table(timings))
