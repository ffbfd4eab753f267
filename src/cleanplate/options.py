"""How a model runs: the valid choices, and the refine options as one typed config.

One source for every tuple of choices: the networks validate against them
(:mod:`cleanplate.models`), ``cleanplate.load`` turns its keyword arguments into a
:class:`RefineOptions` with one-line errors, and the CLI (``cli/options.py``, ``cli/bench.py``)
builds its click choices from here. Torch-free on purpose, so ``--help`` stays fast.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

from .errors import InputError

BACKBONES = ("mobilenetv2", "resnet50", "resnet101")
REFINE_MODES = ("sampling", "thresholding", "full")
CROP_METHODS = ("unfold", "roi_align", "gather")
REPLACE_METHODS = ("scatter_nd", "scatter_element")
KERNEL_SIZES = (1, 3)
BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("fp32", "fp16", "bf16")
PRECISION_ALIASES = {"float32": "fp32", "float16": "fp16"}  # also accepted by cleanplate.load


# (long side up to, backbone scale) in order; larger frames get AUTO_SCALE_ABOVE
AUTO_SCALES = ((1024, 0.5), (2560, 0.25))
AUTO_SCALE_ABOVE = 0.125


def auto_backbone_scale(height: int, width: int) -> float:
    """Backbone scale for a frame: the base network should see roughly 256–640 px on the long side.

    long side ≤ 1024 → 1/2 (smaller frames keep enough detail for the base; measured on the
    held-out benchmark, 1/2 instead of 1/4 cut the default model's MAD by 40 % at 800 px), up to
    2560 → 1/4 (the BGMv2 setting for HD), above → 1/8 (4K).
    """
    long_side = max(height, width)
    for limit, scale in AUTO_SCALES:
        if long_side <= limit:
            return scale
    return AUTO_SCALE_ABOVE


def describe_auto_scale() -> str:
    """The rule of :func:`auto_backbone_scale` in words (for ``--help``): '1/2 up to 1024 px, ...'."""
    from fractions import Fraction

    parts = [f"{Fraction(scale)} up to {limit} px" for limit, scale in AUTO_SCALES]
    return ", ".join([*parts, f"{Fraction(AUTO_SCALE_ABOVE)} above"])


MIN_WORKING_PX = 4  # the base network must see at least this many pixels on each side


def check_backbone_scale(scale: float, height: int, width: int, what: str = "backbone_scale") -> None:
    """Refuse a scale that shrinks an ``height``×``width`` frame below :data:`MIN_WORKING_PX` per side.

    The base network runs on the frame resized by ``scale`` (padded to a multiple of 4 first);
    at 0 px it cannot run, and below a few pixels it sees nothing useful. ``what`` names the
    option in the message (``--backbone-scale`` on the command line).
    """
    short = min(-(-int(height) // 4) * 4, -(-int(width) // 4) * 4)
    if math.floor(short * scale) >= MIN_WORKING_PX:
        return
    smallest = MIN_WORKING_PX / short
    low = int(math.floor(int(height) * scale)), int(math.floor(int(width) * scale))
    hint = f"use at least {smallest:.3g}" if smallest <= 0.5 else "the image is too small for a fixed scale"
    raise InputError(
        f"{what} {scale:g} is too small for a {width}x{height} image: the base network would see "
        f"{low[1]}x{low[0]} px (at least {MIN_WORKING_PX} px a side); {hint}, or leave it unset to choose by size"
    )


@dataclass(frozen=True)
class RefineOptions:
    """MattingRefine's options as the user set them (None: the model's default).

    ``backbone_scale`` None means "chosen per frame size" (:func:`auto_backbone_scale`); the
    others go to the network's constructor (:meth:`network`).
    """

    backbone: str | None = None
    backbone_scale: float | None = None
    refine_mode: str | None = None
    refine_sample_pixels: int | None = None
    refine_threshold: float | None = None
    refine_kernel_size: int | None = None
    refine_prevent_oversampling: bool | None = None
    refine_patch_crop_method: str | None = None
    refine_patch_replace_method: str | None = None

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> RefineOptions:
        """Checked options; every mistake is one :class:`InputError` line naming the option."""
        unknown = sorted(set(options) - set(REFINE_OPTIONS))
        if unknown:
            raise InputError(f"unknown option {unknown[0]!r}; known options: {', '.join(REFINE_OPTIONS)}")
        opts = {k: v for k, v in options.items() if v is not None}
        for key, choices in CHOICES.items():
            if key in opts and opts[key] not in choices:
                raise InputError(f"unknown {key} {opts[key]!r}; choose one of {', '.join(map(str, choices))}")
        if "backbone_scale" in opts:
            scale = _number(opts, "backbone_scale")
            if not 0 < scale <= 0.5:
                raise InputError(f"backbone_scale must be in (0, 0.5]; got {scale}")
        if "refine_sample_pixels" in opts:
            pixels = opts["refine_sample_pixels"]
            if isinstance(pixels, bool) or not isinstance(pixels, Integral) or pixels < 16:
                raise InputError(f"refine_sample_pixels must be an integer >= 16; got {pixels!r}")
        if "refine_threshold" in opts:
            threshold = _number(opts, "refine_threshold")
            if not 0 <= threshold <= 1:
                raise InputError(f"refine_threshold must be in [0, 1]; got {threshold}")
        return cls(**opts)

    def given(self) -> dict[str, Any]:
        """The options that were set, by name."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def network(self) -> dict[str, Any]:
        """Constructor options: :meth:`given` without ``backbone_scale`` (the runner picks it per frame)."""
        return {k: v for k, v in self.given().items() if k != "backbone_scale"}

    def scale_for(self, height: int, width: int) -> float:
        return self.backbone_scale if self.backbone_scale is not None else auto_backbone_scale(height, width)


REFINE_OPTIONS = tuple(f.name for f in fields(RefineOptions))
CHOICES: dict[str, tuple] = {
    "backbone": BACKBONES,
    "refine_mode": REFINE_MODES,
    "refine_patch_crop_method": CROP_METHODS,
    "refine_patch_replace_method": REPLACE_METHODS,
    "refine_kernel_size": KERNEL_SIZES,
}


def _number(opts: dict[str, Any], key: str) -> float:
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InputError(f"{key} must be a number; got {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{key} must be finite; got {value!r}")
    return float(value)


def parse_time(text: str) -> float | None:
    """``'12.5'`` → 12.5, ``'1:02.5'`` → 62.5, ``'1:00:00'`` → 3600.0; None when malformed."""
    m = re.fullmatch(r"\s*(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?|\.\d+)\s*", text)
    if m is None:
        return None
    a, b, s = m.groups()
    hours, minutes = (int(a), int(b)) if b is not None else (0, int(a) if a is not None else 0)
    if (a is not None or b is not None) and float(s) >= 60:
        return None
    return hours * 3600 + minutes * 60 + float(s)


# What each output kind appends to the input's name (`cleanplate image`, `cleanplate batch`)
OUTPUT_SUFFIX = {"rgba": "", "alpha": "_alpha", "fgr": "_fgr", "comp": "_comp", "err": "_err", "ref": "_ref"}
