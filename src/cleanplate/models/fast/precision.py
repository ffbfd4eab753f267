"""Reduced precision for the optimized path: which dtype a module's convolutions run in, and inductor's freezing."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(module: nn.Module, x: torch.Tensor):
    """Reduced-precision convolutions when the module's ``precision`` asks for them (else a no-op)."""
    dtype = PRECISIONS[getattr(module, "precision", "fp32")]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=x.device.type, dtype=dtype)


@contextlib.contextmanager
def inductor_freezing():
    """Inductor's freezing pass (weights as constants: conv+BN/ReLU fusion, prepacked weights) for this call."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=True):
        yield
