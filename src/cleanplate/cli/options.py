"""Shared click options, so every command spells and validates them the same way.

Importing this module must stay cheap (no torch): ``--help`` builds these decorators. The
choices are read from :mod:`cleanplate.options`, which the models validate against too.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import click

from ..options import (  # noqa: F401 (BACKBONES: re-exported)
    BACKBONES,
    BACKENDS,
    MIN_WORKING_PX,
    PRECISIONS,
    REFINE_MODES,
    RefineOptions,
    describe_auto_scale,
)

F = TypeVar("F", bound=Callable[..., Any])


class ScaleType(click.ParamType):
    """A backbone scale written as a decimal or a fraction: ``0.25`` or ``1/4``."""

    name = "SCALE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            scale = float(Fraction(str(value).strip()))
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a number or fraction like 0.25 or 1/4", param, ctx)
        if not 0 < scale <= 0.5:
            self.fail(f"{value} is outside (0, 1/2]", param, ctx)
        return scale


def model_option(f: F) -> F:
    return click.option(
        "--model",
        "-m",
        "model",
        default=None,
        metavar="PATH|NAME",
        help="Checkpoint (official BGMv2 .pth or cleanplate) or built-in model: default, classical. [default: default]",
    )(f)


def device_option(f: F) -> F:
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        metavar="DEVICE",
        help="auto (CUDA if available, else CPU), cpu, cuda or cuda:N.",
    )(f)


def backbone_scale_option(f: F) -> F:
    return click.option(
        "--backbone-scale",
        type=ScaleType(),
        default=None,
        help="Resolution the base network sees, e.g. 1/4 (it must leave the base network at least "
        f"{MIN_WORKING_PX} px a side). [default: by the long side: {describe_auto_scale()}]",
    )(f)


def refine_mode_option(f: F) -> F:
    return click.option(
        "--refine-mode",
        type=click.Choice(REFINE_MODES),
        default=None,
        help="Which patches the refiner recomputes. [default: sampling]",
    )(f)


def sample_pixels_option(f: F) -> F:
    return click.option(
        "--sample-pixels",
        type=click.IntRange(min=16),
        default=None,
        help="Pixels refined in sampling mode (16 per patch). [default: 80000]",
    )(f)


def threshold_option(f: F) -> F:
    return click.option(
        "--threshold",
        type=click.FloatRange(0.0, 1.0),
        default=None,
        help="Error threshold in thresholding mode. [default: 0.1]",
    )(f)


def backend_option(f: F) -> F:
    return click.option(
        "--backend",
        type=click.Choice(BACKENDS),
        default="torch",
        show_default=True,
        help="Inference engine (onnxruntime needs the [onnx] extra).",
    )(f)


def precision_option(f: F) -> F:
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default="fp32",
        show_default=True,
        help="fp16 needs CUDA; bf16 (CPU or CUDA) keeps the eval metrics but is outside the 1e-4 parity tolerance.",
    )(f)


def force_option(f: F) -> F:
    return click.option("--force", "-f", is_flag=True, help="Overwrite existing outputs.")(f)


def matting_options(f: F) -> F:
    """All options that pick and configure the model (apply with one decorator)."""
    for option in reversed(
        (
            model_option,
            device_option,
            backbone_scale_option,
            refine_mode_option,
            sample_pixels_option,
            threshold_option,
            backend_option,
            precision_option,
        )
    ):
        f = option(f)
    return f


def refine_kwargs(
    backbone_scale: float | None = None,
    refine_mode: str | None = None,
    sample_pixels: int | None = None,
    threshold: float | None = None,
    **_: Any,
) -> dict[str, Any]:
    """The MattingRefine options the user actually set, named as ``cleanplate.load`` expects."""
    return RefineOptions(
        backbone_scale=backbone_scale,
        refine_mode=refine_mode,
        refine_sample_pixels=sample_pixels,
        refine_threshold=threshold,
    ).given()


def load_matter(params: dict[str, Any]):  # -> cleanplate.api.Matter (torch imported lazily)
    """``cleanplate.load`` from the parsed :func:`matting_options` (pass the command's kwargs)."""
    from ..api import load_from_options

    return load_from_options(params)


def smooth_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--smooth [STRENGTH]``: temporal matte smoothing, shared by ``video`` and ``live``."""
    return click.option(
        "--smooth",
        type=click.FloatRange(0.0, 1.0, max_open=True),
        default=0.0,
        is_flag=False,
        flag_value=0.6,
        metavar="[STRENGTH]",
        help="Temporal smoothing of the matte where the image is still (cuts flicker). Bare --smooth = 0.6.",
    )(func)


def plate_frames_option(help_text: str, default: str | None = None) -> Callable[[F], F]:
    """``--plate-frames A:B``: one meaning in ``video`` and ``live`` (frames A..B-1; a bare N means 0:N)."""
    return click.option(
        "--plate-frames",
        metavar="A:B",
        default=default,
        show_default=default is not None,
        help=f"{help_text} A bare N means 0:N (deprecated).",
    )


def frame_range(text: str) -> tuple[int, int | None]:
    """``--plate-frames`` parsed; the deprecation of a bare count becomes one ``warning:`` line on stderr."""
    import warnings

    from ..plate.load import parse_frame_range

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FutureWarning)
        parsed = parse_frame_range(text)
    for w in caught:
        click.echo(f"cleanplate: warning: {w.message}", err=True)
    return parsed


def matte_control_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The keyer controls, shared by ``image``, ``video`` and ``live`` (see :mod:`cleanplate.pipeline.controls`)."""
    options = (
        click.option(
            "--choke",
            type=float,
            default=0.0,
            metavar="PX",
            help="Erode the matte by PX pixels (pull the edge in); negative expands it. Fractions interpolate.",
        ),
        click.option(
            "--feather", type=float, default=0.0, metavar="PX", help="Soften the matte edge (Gaussian, sigma PX/2)."
        ),
        click.option(
            "--clip-black", type=float, default=0.0, metavar="A", help="Alpha at or below A becomes 0 (levels)."
        ),
        click.option(
            "--clip-white", type=float, default=1.0, metavar="A", help="Alpha at or above A becomes 1 (levels)."
        ),
        click.option(
            "--garbage",
            type=click.Path(path_type=Path),
            default=None,
            metavar="MASK",
            help="Grey mask image, white = always background (resized to the frame).",
        ),
        click.option(
            "--holdout",
            type=click.Path(path_type=Path),
            default=None,
            metavar="MASK",
            help="Grey mask image, white = always subject (resized to the frame; wins over --garbage).",
        ),
        click.option(
            "--keep-shadow",
            type=float,
            default=0.0,
            is_flag=False,
            flag_value=1.0,
            metavar="[STRENGTH]",
            help="Multiply the subject's cast shadow into composites on the new background (bare: 1).",
        ),
    )
    for option in reversed(options):
        func = option(func)
    return func


def matte_controls(params: dict[str, Any]):  # -> cleanplate.pipeline.controls.MatteControls (torch-free import)
    """The :class:`MatteControls` of the parsed :func:`matte_control_options` (popped from ``params``), checked."""
    from ..pipeline.controls import MatteControls

    return MatteControls(
        clip_black=params.pop("clip_black", 0.0),
        clip_white=params.pop("clip_white", 1.0),
        choke=params.pop("choke", 0.0),
        feather=params.pop("feather", 0.0),
        garbage=params.pop("garbage", None),
        holdout=params.pop("holdout", None),
    ).check()


def keep_shadow_value(params: dict[str, Any]) -> float:
    """``--keep-shadow`` (popped from ``params``), checked: a strength in [0, 1]."""
    from ..errors import InputError

    value = float(params.pop("keep_shadow", 0.0))
    if not 0.0 <= value <= 1.0:
        raise InputError(f"--keep-shadow must be in [0, 1]; got {value:g}")
    return value


PLATE_OUTPUT_KINDS = ("plate", "confidence", "never_seen")


def split_plate_outputs(items: list[str]) -> tuple[list[str], dict[str, Path]]:
    """``KIND=PATH`` items → (video outputs, {plate|confidence|never_seen: image path})."""
    from ..errors import InputError

    video: list[str] = []
    plate: dict[str, Path] = {}
    for item in items:
        head, sep, tail = item.partition("=")
        kind = head.strip().lower().replace("-", "_")
        if sep and kind in PLATE_OUTPUT_KINDS:
            if not tail.strip():
                raise InputError(f"output {item!r} has no path")
            if kind in plate:
                raise InputError(f"{kind}= is given twice")
            plate[kind] = Path(tail.strip())
        else:
            video.append(item)
    return video, plate


def auto_plate_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--auto-frames`` / ``--auto-rounds``: how a plate is built from the clip (``video --plate auto``, ``plate``)."""
    func = click.option(
        "--auto-rounds",
        type=click.IntRange(1, 10),
        default=3,
        show_default=True,
        help="Plate from the clip: the median, then ROUNDS-1 times matte → mask the subject → re-estimate.",
    )(func)
    return click.option(
        "--auto-frames",
        type=click.IntRange(3, 301),
        default=21,
        show_default=True,
        help="Plate from the clip: frames sampled (evenly) for the per-pixel median.",
    )(func)
