"""ONNX export of MattingBase / MattingRefine, with a check against PyTorch in onnxruntime.

Model spec (every backbone; details and examples in the README):

- inputs ``src`` and ``bgr``: float32 (B, 3, H, W), RGB in [0, 1]; B, H and W are dynamic.
  MattingRefine needs H and W divisible by 4.
- MattingRefine outputs ``pha`` (B, 1, H, W), ``fgr`` (B, 3, H, W), ``pha_sm`` / ``fgr_sm`` /
  ``err_sm`` (B, 1|3|1, Hc, Wc) with Hc = floor(H * backbone_scale), and ``ref_sm`` (B, 1, H/4, W/4)
  float 0/1. MattingBase outputs ``pha``, ``fgr``, ``err`` (B, 1, H, W) and ``hid`` (B, 32, H, W).
- ``backbone_scale``, the refine mode, sample pixels and threshold are fixed at export time and
  stored in the model's metadata (``metadata_props``), with the backbone and cleanplate version.

The sampling refiner is exported in its static-shape form: top-k of ``min(sample_pixels // 16,
H/4 * W/4)`` cells per image; zero-error cells are computed but not written. Thresholding uses
ONNX NonZero (a data-dependent patch count, fine for onnxruntime). Two exporters are offered:
``torchscript`` (torch.onnx's TorchScript-based exporter, seconds, the default) and ``dynamo``
(``torch.onnx.export(..., dynamo=True)``: same results, but minutes for dynamic shapes).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .._version import __version__
from ..errors import CleanplateError, InputError, MissingDependencyError
from ..io.atomic import atomic_path, check_output
from ..models.guided import GuidedMatting
from ..models.matting import MattingRefine
from .common import (
    INPUT_NAMES,
    Comparison,
    check_shape_for,
    compare_outputs,
    example_pair,
    export_module,
    model_config,
    output_names,
    reference_outputs,
    tolerance_for,
)

EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = 17
OPSETS = range(16, 21)  # tested: 16, 17 (default), 18


@dataclass
class ExportResult:
    path: Path
    format: str
    exporter: str
    opset: int | None
    seconds: float
    check: Comparison | None
    check_shape: tuple[int, ...] | None

    def summary(self) -> str:
        text = f"wrote {self.path} ({self.format}, {self.path.stat().st_size / 1e6:.1f} MB, {self.seconds:.1f} s)"
        if self.check is not None:
            text += f"\ncheck vs PyTorch on {'x'.join(map(str, self.check_shape or ()))}: {self.check.summary()}"
        return text


def _need_onnxruntime():
    try:
        import onnxruntime
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            "onnxruntime is needed to check or run ONNX models: pip install 'cleanplate[onnx]'"
        ) from exc
    return onnxruntime


AXES = {
    "full": {0: "batch", 2: "height", 3: "width"},
    "coarse": {0: "batch", 2: "coarse_height", 3: "coarse_width"},  # floor(height * backbone_scale)
    "grid": {0: "batch", 2: "grid_height", 3: "grid_width"},  # height / 4
}
OUTPUT_AXES = {"pha_sm": "coarse", "fgr_sm": "coarse", "err_sm": "coarse", "ref_sm": "grid"}


def dynamic_axes(model: nn.Module) -> dict[str, dict[int, str]]:
    """Names of the dynamic axes (for the TorchScript-based exporter), as in the model spec."""
    names = (*INPUT_NAMES, *output_names(model))
    return {name: dict(AXES[OUTPUT_AXES.get(name, "full")]) for name in names}


def _trace_shape(model: nn.Module) -> tuple[int, int, int]:
    return (1, 256, 384) if isinstance(model, (MattingRefine, GuidedMatting)) else (1, 128, 192)


def _export_torchscript_based(module, args, path: Path, names: tuple[str, ...], axes, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings for the input checks, deprecation notice
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(names),
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
        )


def _export_dynamo(module, args, path: Path, names: tuple[str, ...], refine: bool, opset: int) -> None:
    from torch.export import Dim

    batch = Dim("batch", min=1, max=1024)
    if refine:  # H and W divisible by 4; the base network needs a few pixels at the coarse size
        h, w = 4 * Dim("h4", min=16, max=4096), 4 * Dim("w4", min=16, max=4096)
    else:
        h, w = Dim("height", min=32, max=16384), Dim("width", min=32, max=16384)
    shapes = {name: {0: batch, 2: h, 3: w} for name in INPUT_NAMES}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=list(INPUT_NAMES),
            output_names=list(names),
            opset_version=opset,
            verbose=False,
        )
        program.save(str(path))


def _add_metadata(path: Path, config: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    meta = {**config, "producer": f"cleanplate {__version__}", "torch": torch.__version__}
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def run_onnx(path: str | os.PathLike, src: torch.Tensor, bgr: torch.Tensor, threads: int | None = None) -> tuple:
    """Run an exported model once in onnxruntime (CPU); returns numpy arrays in output order."""
    ort = _need_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return tuple(session.run(None, {"src": src.numpy(), "bgr": bgr.numpy()}))


def check_onnx(
    path: str | os.PathLike, model: nn.Module, shape: tuple[int, int, int] = (2, 320, 320), seed: int = 0
) -> Comparison:
    """Run the ONNX file and the straightforward PyTorch ``model`` on the same plausible input."""
    src, bgr = example_pair(*shape, seed=seed)
    want = reference_outputs(model, src, bgr)
    got = run_onnx(path, src, bgr)
    return compare_outputs(output_names(model), got, want, patched=not isinstance(model, GuidedMatting))


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
    check: bool = True,
    force: bool = False,
    check_shape: tuple[int, int, int] | None = None,
) -> ExportResult:
    """Export ``model`` (MattingBase or MattingRefine) to ``path`` with dynamic batch, height and width.

    Written atomically (temp file, then rename; an existing file only with ``force``). With
    ``check`` the file is run in onnxruntime on an input of another batch and size than the traced
    one and compared with ``model`` itself; a difference beyond tolerance raises and nothing is written.
    """
    if exporter not in EXPORTERS:
        raise InputError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if int(opset) not in OPSETS:
        raise InputError(f"opset must be between {OPSETS.start} and {OPSETS.stop - 1}; got {opset}")
    target = check_output(path, force)
    module = export_module(model)
    names = output_names(model)
    trace = _trace_shape(model)
    if exporter == "dynamo":  # torch.export specialises axes of size 1: trace a batch of 2
        trace = (2, *trace[1:])
        opset = max(int(opset), 18)  # the dynamo exporter's own opset; down-conversion fails on this graph
    args = example_pair(*trace, seed=1)
    started = time.perf_counter()
    comparison = None
    shape = check_shape or check_shape_for(model, trace)
    with atomic_path(target, force) as tmp:
        try:
            if exporter == "dynamo":
                _export_dynamo(module, args, tmp, names, isinstance(model, (MattingRefine, GuidedMatting)), int(opset))
            else:
                _export_torchscript_based(module, args, tmp, names, dynamic_axes(model), int(opset))
        except CleanplateError:
            raise
        except Exception as exc:  # exporter failures are long; keep the first line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CleanplateError(f"ONNX export ({exporter}) failed: {first}") from exc
        _add_metadata(tmp, model_config(model))
        if check:
            try:
                comparison = check_onnx(tmp, model, shape)
            except CleanplateError:
                raise
            except Exception as exc:  # onnxruntime's own exception types
                first = str(exc).strip().splitlines()[0]
                raise CleanplateError(f"the exported model does not run in onnxruntime ({first}); not written") from exc
            if not comparison.ok(tolerance_for(model)):
                raise CleanplateError(f"exported model does not match PyTorch ({comparison.summary()}); not written")
    return ExportResult(target, "onnx", exporter, int(opset), time.perf_counter() - started, comparison, shape)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The cleanplate metadata of an exported file (empty for foreign models)."""
    ort = _need_onnxruntime()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(session.get_modelmeta().custom_metadata_map)
