"""High-level API: ``cleanplate.load(...)`` → :class:`Matter`; ``Matter.matte(src, plate)`` → :class:`Matte`.

- :mod:`.matter`: the model handle (any frame size, batches, plate fitting or alignment);
- :mod:`.matte`: the result of one frame and how to save it;
- :mod:`.device`: device and precision;
- the refine options are :class:`cleanplate.options.RefineOptions`, models come from
  :func:`cleanplate.models.registry.create_model`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..errors import CleanplateError, InputError, MissingDependencyError
from ..options import BACKENDS, REFINE_OPTIONS, RefineOptions, auto_backbone_scale
from .device import DTYPES, precision_name, resolve_device
from .matte import DEFAULT_BACKGROUND, SAVE_KINDS, Matte
from .matter import Matter

PRECISIONS = {**DTYPES, "float32": torch.float32, "float16": torch.float16}  # name (or alias) -> tensor dtype


def validate_refine_options(options: dict[str, Any]) -> dict[str, Any]:
    """Check MattingRefine option values up front so mistakes read as one :class:`InputError` line."""
    return RefineOptions.from_kwargs(options).given()


def _ort_runner(model: nn.Module, device: torch.device, dtype: torch.dtype) -> Any:
    # ---- onnxruntime backend hook: the runner lives in cleanplate.export.runtime (speed helper). ----
    # Contract: OrtMatting.from_model(model, device=..., dtype=...) returns a callable taking padded
    # (B, 3, H, W) src/bgr tensors and returning MattingRefine's 6-tuple (torch tensors). If it has a
    # writable ``backbone_scale`` attribute, Matter sets it per call like on the torch model.
    try:
        from ..export.runtime import OrtMatting  # type: ignore[import-not-found]
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("onnx"):
            raise MissingDependencyError(
                f"backend 'onnxruntime' needs {exc.name}: pip install 'cleanplate[onnx]'"
            ) from exc
        raise InputError("backend 'onnxruntime' is not available in this build of cleanplate") from exc
    return OrtMatting.from_model(model, device=device, dtype=dtype)


def load(
    model: str | os.PathLike | nn.Module | None = None,
    *,
    device: str | torch.device = "auto",
    backend: str = "torch",
    precision: str = "fp32",
    fast: bool = True,
    **refine_options: Any,
) -> Matter:
    """Load a matting model and return a :class:`Matter`.

    ``model``: a checkpoint path (official BGMv2 ``.pth`` or cleanplate format; the backbone is
    read from its keys), a built-in name (:func:`cleanplate.models.registry.list_models`:
    'default', 'classical'), an ``nn.Module``, or None for 'default'.
    ``refine_options``: MattingRefine's ``backbone_scale`` (default: chosen per frame size),
    ``refine_mode`` ('sampling', 'thresholding', 'full'), ``refine_sample_pixels``,
    ``refine_threshold``, ... (:class:`cleanplate.options.RefineOptions`). ``precision`` 'fp16'
    needs CUDA.
    """
    from ..models.registry import create_model

    options = RefineOptions.from_kwargs(refine_options)
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    name = precision_name(precision)
    if name == "bf16" and not (fast and backend == "torch"):
        raise InputError("precision bf16 runs through the optimized torch path (backend torch, fast=True)")
    dev = resolve_device(device)
    dtype = DTYPES[name]
    if dtype == torch.float16 and dev.type != "cuda":
        raise InputError("precision fp16 needs a CUDA device; use fp32 on CPU")
    net, info = create_model(model, **options.given())
    net = net.eval().to(dev, dtype)
    runner = _ort_runner(net, dev, dtype) if backend == "onnxruntime" else None
    # ---- speed helper: the optimized path (cleanplate.models.fast): same outputs within 1e-4 (fp32) ----
    # ``net`` stays the reference module (Matter.model); the runner holds its own folded copy.
    if backend == "torch" and fast:
        from ..models.fast import optimize

        fast_net = optimize(net, precision="bf16" if name == "bf16" else "fp32")
        runner = fast_net if fast_net is not net else None
    info = {**info, "backend": backend, "precision": precision, "fast": bool(fast and backend == "torch")}
    return Matter(
        net if backend == "torch" else None,
        device=dev,
        dtype=dtype,
        backbone_scale=options.backbone_scale,
        runner=runner,
        info=info,
    )


def load_from_options(params: dict[str, Any]) -> Matter:
    """:func:`load` from the command line's matting options (``model``, ``device``, ``backend``,
    ``precision``, ``backbone_scale``, ``refine_mode``, ``sample_pixels``, ``threshold``), as the CLI,
    the batch runner and the server parse them."""
    refine = RefineOptions(
        backbone_scale=params.get("backbone_scale"),
        refine_mode=params.get("refine_mode"),
        refine_sample_pixels=params.get("sample_pixels"),
        refine_threshold=params.get("threshold"),
    ).given()
    return load(
        params.get("model"),
        device=params.get("device", "auto"),
        backend=params.get("backend", "torch"),
        precision=params.get("precision", "fp32"),
        **refine,
    )


__all__ = [
    "load_from_options",
    "BACKENDS",
    "DEFAULT_BACKGROUND",
    "PRECISIONS",
    "REFINE_OPTIONS",
    "SAVE_KINDS",
    "CleanplateError",
    "Matte",
    "Matter",
    "RefineOptions",
    "auto_backbone_scale",
    "load",
    "resolve_device",
    "validate_refine_options",
]
