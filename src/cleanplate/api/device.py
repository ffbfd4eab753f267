"""Where and in what precision a model runs: the device from 'auto' / 'cpu' / 'cuda:N', the tensor dtype."""

from __future__ import annotations

import torch

from ..errors import InputError
from ..options import PRECISION_ALIASES, PRECISIONS

DTYPES = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.float32,  # tensors stay float32; convolutions run in bfloat16 (autocast, fast path)
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' → CUDA when available, else CPU; checks that an explicit device exists."""
    if isinstance(device, torch.device):
        dev = device
    elif device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(str(device))
        except RuntimeError:
            raise InputError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {str(device)!r} does not exist ({torch.cuda.device_count()} CUDA device(s))")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InputError("device 'mps' requested but it is not available")
    elif dev.type != "cpu":
        raise InputError(f"unsupported device {str(device)!r}; use auto, cpu, cuda or cuda:N")
    return dev


def precision_name(precision: str) -> str:
    """'fp32' / 'fp16' / 'bf16' for a precision or its alias ('float32', 'float16'); one-line error otherwise."""
    name = PRECISION_ALIASES.get(precision, precision)
    if name not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    return name
