"""``cleanplate export onnx|torchscript``: a deployable model file, checked against PyTorch.

The file is the optimized graph (BatchNorm folded, static-shape sampling refiner) with dynamic
batch, height and width. Before it is written (atomically) it is run on a plausible input of
another size than the traced one and compared with the PyTorch model; the max abs diff is printed.
"""

from __future__ import annotations

import click

from .options import (
    BACKBONES,
    backbone_scale_option,
    force_option,
    model_option,
    refine_mode_option,
    sample_pixels_option,
    threshold_option,
)

FORMATS = ("onnx", "torchscript")
DEFAULT_SCALE = 0.25


def _build(model, backbone, base_only, options):
    """The network to export: from a checkpoint / built-in name, or random weights for --backbone alone."""
    from ..errors import InputError
    from ..models.guided import GuidedMatting
    from ..models.matting import MattingBase, MattingRefine

    scale = options.pop("backbone_scale", None)
    if base_only and (options or scale is not None):
        names = ", ".join(sorted(["backbone_scale"] * (scale is not None) + list(options)))
        raise InputError(f"--base-only exports MattingBase, which has no {names}")
    if model is None and backbone is not None:
        click.echo(f"no --model: exporting {backbone} with random weights (for testing and benchmarks)", err=True)
        if base_only:
            return MattingBase(backbone).eval()
        net = MattingRefine(backbone, **options).eval()
    else:
        from ..api import load

        if backbone is not None:
            options["backbone"] = backbone
        net = load(model, device="cpu", **options).model
        if net is None or not isinstance(net, (MattingBase, GuidedMatting)):
            raise InputError(f"model {model or 'default'!r} is not a neural network; nothing to export")
        if isinstance(net, GuidedMatting):
            if base_only:
                raise InputError("--base-only applies to BGMv2 models; the plate-guided model has no base network")
            if scale is not None:
                net.backbone_scale = float(scale)
            return net
        if base_only:
            from ..export.common import base_only as to_base

            return to_base(net)
    if isinstance(net, MattingRefine):
        net.backbone_scale = float(scale if scale is not None else DEFAULT_SCALE)
    elif scale is not None:
        raise InputError("the checkpoint is a MattingBase (no refiner): --backbone-scale does not apply")
    return net


@click.command("export")
@click.argument("format", type=click.Choice(FORMATS), metavar="onnx|torchscript")
@model_option
@click.option("--backbone", type=click.Choice(BACKBONES), default=None, help="Without --model: random weights.")
@click.option("--out", "-o", "out", required=True, metavar="FILE", help="Output file (.onnx / .pt).")
@backbone_scale_option
@refine_mode_option
@sample_pixels_option
@threshold_option
@click.option("--base-only", is_flag=True, help="Export MattingBase only (no refiner, full-resolution outputs).")
@click.option("--opset", type=click.IntRange(16, 20), default=17, show_default=True, help="ONNX opset.")
@click.option(
    "--exporter",
    type=click.Choice(("torchscript", "dynamo")),
    default="torchscript",
    show_default=True,
    help="torch.onnx exporter: TorchScript-based (seconds) or dynamo (minutes for dynamic shapes).",
)
@click.option("--no-check", is_flag=True, help="Skip the comparison with PyTorch.")
@force_option
def command(
    format: str,
    model: str | None,
    backbone: str | None,
    out: str,
    backbone_scale: float | None,
    refine_mode: str | None,
    sample_pixels: int | None,
    threshold: float | None,
    base_only: bool,
    opset: int,
    exporter: str,
    no_check: bool,
    force: bool,
) -> None:
    """Export the plate-guided default, a MattingRefine or a MattingBase model to ONNX or TorchScript.

    --backbone-scale, --refine-mode, --sample-pixels and --threshold are fixed in the exported
    graph (BGMv2 backbone scale default 1/4; the plate-guided model keeps its own, 1/2, and has no
    refiner options). Batch, height and width stay dynamic (MattingRefine: H, W divisible by 4).
    """
    from ..io.atomic import check_output
    from .options import refine_kwargs

    check_output(out, force)  # before loading anything
    options = refine_kwargs(backbone_scale, refine_mode, sample_pixels, threshold)
    net = _build(model, backbone, base_only, options)
    name = getattr(net, "backbone_name", None)
    click.echo(f"exporting {type(net).__name__}{f'({name})' if name else ''} to {format} ...", err=True)
    if format == "onnx":
        from ..export.onnx import export_onnx

        result = export_onnx(net, out, opset=opset, exporter=exporter, check=not no_check, force=force)
    else:
        from ..export.torchscript import export_torchscript

        result = export_torchscript(net, out, check=not no_check, force=force)
    click.echo(result.summary())
