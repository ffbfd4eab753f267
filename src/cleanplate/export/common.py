"""What the ONNX and TorchScript exports share: the traced module, check inputs, output comparison.

Why a separate module: both exporters trace the same export-mode fast model and validate the
result the same way against the straightforward PyTorch model (the parity-tested path).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..models.fast import optimize
from ..models.guided import GuidedMatting
from ..models.matting import MattingBase, MattingRefine

INPUT_NAMES = ("src", "bgr")
REFINE_OUTPUTS = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")
BASE_OUTPUTS = ("pha", "fgr", "err", "hid")
TOLERANCE = 1e-4  # ../shared/reference/README.md: max abs diff on float outputs
# GuidedMatting divides by colour differences (compositing equation, tone fit over the whole
# frame): float32 rounding of another runtime shows up to ~4e-3 in fgr, ~1e-3 in alpha (measured).
GUIDED_TOLERANCE = 1e-2
# Near-ties in the error map may pick a different patch at the k-th place (the original itself does
# that between 1 and 2 threads); allowed for this fraction of the refined cells.
MAX_FLIPPED_FRACTION = 0.005


def output_names(model: nn.Module) -> tuple[str, ...]:
    return REFINE_OUTPUTS if isinstance(model, (MattingRefine, GuidedMatting)) else BASE_OUTPUTS


def tolerance_for(model: nn.Module) -> float:
    return GUIDED_TOLERANCE if isinstance(model, GuidedMatting) else TOLERANCE


def check_exportable(model: nn.Module) -> None:
    if not isinstance(model, (MattingBase, GuidedMatting)):
        raise InputError(
            f"only MattingBase/MattingRefine/GuidedMatting models can be exported, not {type(model).__name__}"
        )


def cpu_float(model: nn.Module) -> nn.Module:
    """``model`` itself when it is float32 on the CPU, else a float32 CPU copy (never moved in place)."""
    if all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters()):
        return model
    return copy.deepcopy(model).float().cpu()


def export_module(model: nn.Module) -> nn.Module:
    """The module that is traced: the fast path (BN folded) with functional, ONNX-exact ops."""
    check_exportable(model)
    if isinstance(model, GuidedMatting):  # plain tensor ops throughout: traced as it is
        return cpu_float(model).eval()
    return optimize(cpu_float(model).eval(), channels_last=False).set_export_mode(True)


def base_only(model: nn.Module) -> MattingBase:
    """The MattingBase part of a MattingRefine (same weights, no refiner)."""
    check_exportable(model)
    if type(model) is MattingBase:
        return model
    base = MattingBase(model.backbone_name)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("refiner.")}
    base.load_state_dict(state, strict=True)
    return base.eval()


def model_config(model: nn.Module) -> dict[str, str]:
    """Plain strings describing the exported network (stored as ONNX metadata)."""
    if isinstance(model, GuidedMatting):
        return {
            "architecture": "GuidedMatting",
            "backbone": "none",
            "backbone_scale": repr(float(model.backbone_scale)),
            "widths": ",".join(map(str, model.widths)),
            "subpixel": str(model.subpixel),
        }
    config = {"architecture": type(model).__name__, "backbone": model.backbone_name}
    if isinstance(model, MattingRefine):
        r = model.refiner
        config.update(
            backbone_scale=repr(float(model.backbone_scale)),
            refine_mode=r.mode,
            refine_sample_pixels=str(r.sample_pixels),
            refine_threshold=repr(float(r.threshold)),
            refine_kernel_size=str(r.kernel_size),
            refine_prevent_oversampling=str(r.prevent_oversampling),
        )
    return config


def _smooth(shape: tuple[int, ...], cells: int, generator: torch.Generator) -> torch.Tensor:
    b, c, h, w = shape
    low = torch.rand(b, c, cells, cells, generator=generator)
    return F.interpolate(low, (h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def example_pair(batch: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A plausible (src, bgr) pair: smooth textured plate, a different subject ellipse, 8-bit noise."""
    g = torch.Generator().manual_seed(seed)
    shape = (batch, 3, height, width)
    bgr = _smooth(shape, 6, g)
    subject = _smooth(shape, 9, g)
    yy = torch.linspace(-1, 1, height)[:, None]
    xx = torch.linspace(-1, 1, width)[None, :]
    inside = ((yy / 0.6) ** 2 + (xx / 0.35) ** 2 < 1).to(torch.float32)
    src = bgr * (1 - inside) + subject * inside
    src = (src + 0.01 * torch.randn(shape, generator=g)).clamp(0, 1)
    bgr = (bgr + 0.01 * torch.randn(shape, generator=g)).clamp(0, 1)
    return (src * 255).round() / 255, (bgr * 255).round() / 255


@dataclass
class Comparison:
    """Max abs differences per output (pha/fgr only over patches refined the same way)."""

    max_abs_diff: dict[str, float]
    flipped_cells: int = 0
    refined_cells: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff.values(), default=0.0)

    def ok(self, tolerance: float = TOLERANCE) -> bool:
        flips_ok = self.flipped_cells <= max(1, math.floor(MAX_FLIPPED_FRACTION * max(self.refined_cells, 1)))
        return self.worst <= tolerance and flips_ok

    def summary(self) -> str:
        parts = [f"{k} {v:.2e}" for k, v in self.max_abs_diff.items()]
        text = "max abs diff: " + ", ".join(parts)
        if self.refined_cells:
            text += f"; refined patches differing: {self.flipped_cells} of {self.refined_cells}"
        return text


def compare_outputs(names: tuple[str, ...], got: tuple, want: tuple, *, patched: bool = True) -> Comparison:
    """Compare two output tuples of the same model type (tensors or arrays).

    ``patched``: a BGMv2 refiner's outputs, where pha/fgr are compared only over the patches both
    sides refined (a near-tie may pick another patch); GuidedMatting's are compared everywhere.
    """
    got = tuple(torch.as_tensor(g).float() for g in got)
    want = tuple(torch.as_tensor(w).float() for w in want)
    if len(got) != len(want):
        raise InputError(f"expected {len(want)} outputs, got {len(got)}")
    diffs: dict[str, float] = {}
    for name, g, w in zip(names, got, want, strict=True):
        if g.shape != w.shape:
            raise InputError(f"output {name}: shape {tuple(g.shape)} != {tuple(w.shape)}")
    if names != REFINE_OUTPUTS or not patched:
        for name, g, w in zip(names, got, want, strict=True):
            diffs[name] = float((g - w).abs().max()) if g.numel() else 0.0
        return Comparison(diffs)
    ref_got, ref_want = got[5], want[5]
    same = ref_got == ref_want
    flipped = int((~same).sum())
    refined = int((ref_want > 0).sum())
    keep = F.interpolate(same.float(), scale_factor=4, mode="nearest") > 0.5  # full-res pixels of agreeing cells
    for name, g, w in zip(names[:2], got[:2], want[:2], strict=True):
        d = (g - w).abs() * keep
        diffs[name] = float(d.max()) if d.numel() else 0.0
    for name, g, w in zip(names[2:5], got[2:5], want[2:5], strict=True):
        diffs[name] = float((g - w).abs().max()) if g.numel() else 0.0
    return Comparison(diffs, flipped_cells=flipped, refined_cells=refined)


def reference_outputs(model: nn.Module, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The straightforward PyTorch model's outputs (the parity-tested eager path)."""
    with torch.inference_mode():
        return tuple(t.float() for t in cpu_float(model).eval()(src, bgr))


def check_shape_for(model: nn.Module, trace_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """A check input shape different from the traced one in batch, height and width (proves dynamic axes)."""
    b, h, w = trace_shape
    return (b + 1, h + 64, w - 64 if w > 128 else w + 128)
