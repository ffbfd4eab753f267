"""Deterministic random weights in the official BGMv2 checkpoint layout (tests without ../shared).

A copy of this project's ../shared/reference/gen_weights.py (same rules, same values), plus
:func:`entries_for`, which lists the layout from cleanplate's own networks instead of
``checkpoint_keys.json`` (tests/models/test_parity.py checks the two layouts are the same).
With ../shared present, tests/conftest.py still reads the key lists from there.


Given a list of ``[key, shape, dtype]`` entries (see ``checkpoint_keys.json``) and an integer
seed, build a state dict with those keys, in that order. The values are random but chosen so
the network's activations stay O(1) and its outputs are useful for parity tests (soft alpha,
a varying error map, partial refinement). Only torch is needed; no model code.

Reproducibility: every tensor is drawn from its own ``torch.Generator`` (CPU mt19937, which
uses only 32 seed bits), seeded with ``crc32(f"{seed}:{key}")``, as integers n in [0, 2**24) from
``torch.randint``; a draw on (low, high) is low + (high - low) * (2n + 1) / 2**25. After the draw
there is only exact integer arithmetic and single, correctly rounded float64 operations, then
one rounding to float32, so by construction the values do not depend on the CPU, its vector
instructions or libm (checked identical under torch 2.13.0+cpu and 2.14.1+cu130). A per-key
stream also makes the values independent of key order: the MattingBase and MattingRefine
entries with the same seed share every common tensor.

Rules (fan_in = prod(shape[1:])):
  * int64 tensors (``num_batches_tracked``): zeros.
  * BatchNorm (a key prefix that owns a ``running_var``): weight U(0.8, 1.2), bias U(-0.2, 0.2),
    running_mean U(-0.2, 0.2), running_var U(0.5, 1.5). The last BatchNorm of a ResNet
    bottleneck (``backbone.layerN.M.bn3``) has its weight scaled by 0.25, so each residual block
    adds a small branch to its identity instead of doubling the activation variance (without
    this, resnet101 features reach ~1e6 and every output saturates at 0 or 1).
  * Any other weight with 2+ dims (convolutions): He-uniform, U(-b, b) with b = sqrt(6 / fan_in).
  * Output heads (``decoder.conv4``: alpha, 3 foreground residual, error, 32 hidden channels;
    ``refiner.conv4``: alpha, 3 foreground residual): He-uniform times 2, then each kernel's
    spatial mean is removed, so a head reacts to structure (edges, the composited subject,
    image borders) and not to the arbitrary DC level of random features; the bias then sets
    each channel's centre: U(-0.05, 0.05) plus 0.5 on the alpha channel and 0.2 on the error
    channel. Without this, for many seeds most of alpha or error sits at exactly 0 or 1.
  * Any other 1-dim tensor (conv biases): U(-0.05, 0.05).

"""

from __future__ import annotations

import json
import math
import zlib

import torch

RANGE = 2**24  # integers drawn per value; every draw maps exactly to float64
HEADS = {"decoder.conv4": {0: 0.5, 4: 0.2}, "refiner.conv4": {0: 0.5}}  # prefix -> channel centres
HEAD_GAIN = 2.0
RESIDUAL_BN_GAIN = 0.25


def _ints(key: str, seed: int, shape: list[int]) -> torch.Tensor:
    """Odd integers in (-RANGE, RANGE), uniformly spread, from this key's own generator."""
    gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{key}".encode()))  # mt19937 uses 32 bits
    return torch.randint(0, RANGE, shape, generator=gen, dtype=torch.int64) * 2 + 1 - RANGE


def _uniform(ints: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Map the integers to U(low, high); the division by a power of two is exact."""
    unit = ints.double() / RANGE  # in (-1, 1)
    return (unit * ((high - low) / 2) + (high + low) / 2).float()


def _tensor(key: str, shape: list[int], dtype: str, seed: int, keys: set[str]) -> torch.Tensor:
    prefix, name = key.rsplit(".", 1)
    if dtype == "int64":
        return torch.zeros(shape, dtype=torch.int64)
    ints = _ints(key, seed, shape)
    if prefix + ".running_var" in keys:  # BatchNorm
        if name == "weight":
            low, high = (0.8, 1.2)
            if prefix.startswith("backbone.layer") and prefix.endswith(".bn3"):
                low, high = low * RESIDUAL_BN_GAIN, high * RESIDUAL_BN_GAIN
            return _uniform(ints, low, high)
        return _uniform(ints, *{"bias": (-0.2, 0.2), "running_mean": (-0.2, 0.2), "running_var": (0.5, 1.5)}[name])
    if len(shape) >= 2:
        bound = math.sqrt(6.0 / math.prod(shape[1:]))
        if prefix not in HEADS:
            return _uniform(ints, -bound, bound)
        # Remove each kernel's mean in exact integer arithmetic, then scale once.
        area = math.prod(shape[2:])
        centred = ints * area - ints.sum(dim=tuple(range(2, len(shape))), keepdim=True)
        return (centred.double() / (area * RANGE) * (bound * HEAD_GAIN)).float()
    bias = _uniform(ints, -0.05, 0.05)
    for channel, centre in HEADS.get(prefix, {}).items():
        bias[channel] = float(bias[channel].double() + centre)
    return bias


def make_state_dict(entries: list, seed: int) -> dict[str, torch.Tensor]:
    """State dict for ``entries`` (list of [key, shape, dtype]) and ``seed``, in entry order."""
    keys = {key for key, _, _ in entries}
    return {key: _tensor(key, list(shape), dtype, seed, keys) for key, shape, dtype in entries}


def load_entries(keys_json: str, entry: str) -> list:
    """The [key, shape, dtype] list named ``entry`` (e.g. "refine_mobilenetv2") in ``keys_json``."""
    with open(keys_json) as f:
        return json.load(f)["entries"][entry]


def entries_for(entry: str) -> list:
    """``[key, shape, dtype]`` of ``entry`` ("refine_mobilenetv2", "base_resnet50", ...) from cleanplate's networks."""
    from cleanplate.models.matting import MattingBase, MattingRefine

    kind, backbone = entry.split("_", 1)
    with torch.device("meta"):  # shapes only: free to build, even resnet101
        net = (MattingRefine if kind == "refine" else MattingBase)(backbone)
    return [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in net.state_dict().items()]
