"""TorchScript export: the traced fast path (BN folded, static-shape refiner), dynamic in B, H, W.

Load it with ``torch.jit.load(path)``; it is called like the PyTorch model, ``(src, bgr)``, and
returns the same tuple. Tracing records shape arithmetic as graph ops (sizes are tensors while
tracing), so other batch sizes and resolutions work; the export is checked on another shape.
"""

from __future__ import annotations

import os
import time
import warnings

import torch
from torch import nn

from ..errors import CleanplateError
from ..io.atomic import atomic_path, check_output
from ..models.guided import GuidedMatting
from ..models.matting import MattingRefine
from .common import (
    check_shape_for,
    compare_outputs,
    example_pair,
    export_module,
    output_names,
    reference_outputs,
    tolerance_for,
)
from .onnx import ExportResult


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    check: bool = True,
    force: bool = False,
    check_shape: tuple[int, int, int] | None = None,
) -> ExportResult:
    """Trace ``model`` and save it atomically; with ``check`` the saved file is reloaded and compared."""
    target = check_output(path, force)
    module = export_module(model)
    trace = (1, 256, 384) if isinstance(model, (MattingRefine, GuidedMatting)) else (1, 128, 192)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings for the input checks
        try:
            traced = torch.jit.trace(module, example_pair(*trace, seed=1), check_trace=False, strict=False)
        except Exception as exc:
            raise CleanplateError(f"TorchScript trace failed: {str(exc).strip().splitlines()[0]}") from exc
    shape = check_shape or check_shape_for(model, trace)
    comparison = None
    with atomic_path(target, force) as tmp:
        torch.jit.save(traced, str(tmp))
        if check:
            src, bgr = example_pair(*shape, seed=0)
            loaded = torch.jit.load(str(tmp))
            with torch.inference_mode():
                got = loaded(src, bgr)
            comparison = compare_outputs(
                output_names(model),
                got,
                reference_outputs(model, src, bgr),
                patched=not isinstance(model, GuidedMatting),
            )
            if not comparison.ok(tolerance_for(model)):
                raise CleanplateError(f"traced model does not match PyTorch ({comparison.summary()}); not written")
    return ExportResult(
        target, "torchscript", "torch.jit.trace", None, time.perf_counter() - started, comparison, shape
    )
