"""Load, inspect and save checkpoints: the official BGMv2 files and cleanplate's own format.

Official: ``torch.save(model.state_dict())`` of MattingRefine or MattingBase. The backbone and
the architecture are read off the keys, so users never have to say which file they have.

cleanplate: ``{"format": "cleanplate", "format_version": 1, "architecture": "MattingRefine" |
"MattingBase", "backbone": str, "state_dict": {...}, "meta": {...}}``. Tensors may be float16
(half the size on disk); they are cast back to float32 on load. ``meta`` is free-form plain data
(training config, data sources, metrics).

Everything is loaded with ``weights_only=True``: a checkpoint can never run code. This module
knows files, not names: built-in models and the choice between a name and a path are
:mod:`cleanplate.models.registry`'s.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, InputError
from ..io.atomic import atomic_path
from .guided import GuidedMatting
from .matting import BACKBONES, MattingBase, MattingRefine

FORMAT = "cleanplate"
FORMAT_VERSION = 1
ARCHITECTURES = {"MattingRefine": MattingRefine, "MattingBase": MattingBase}
# Architectures of cleanplate's own (no official layout, no backbone name): built from ``config``.
OWN_ARCHITECTURES = {"GuidedMatting": GuidedMatting}
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load`` with weights_only on CPU; every failure becomes one :class:`CheckpointError` line."""
    p = Path(path)
    if not p.exists():  # (a bare name that is no file: cleanplate.models.registry lists the built-ins)
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise CheckpointError(f"{p} is a folder, not a checkpoint file")
    with open(p, "rb") as f:
        head = f.read(4)
    # torch.save writes a zip archive ('PK\x03\x04'); files from torch < 1.6 are a pickle (0x80).
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise CheckpointError(f"{p} is not a PyTorch checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the CLI must print one line
            warnings.simplefilter("ignore")
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{p} holds Python objects besides tensors, which are not loaded for safety; "
                "save a plain state dict (model.state_dict())"
            ) from exc
        raise CheckpointError(f"{p} is not a PyTorch checkpoint, or it is truncated (unreadable pickle data)") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError) as exc:
        raise CheckpointError(f"{p} is truncated or corrupt ({type(exc).__name__} while reading it)") from exc


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def split_checkpoint(obj: Any, path: str | os.PathLike = "checkpoint") -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, header) from a loaded checkpoint object of either format.

    The header holds ``format`` ('official' | 'cleanplate'), ``format_version``, ``architecture``,
    ``backbone`` (None when it must be inferred) and ``meta``.
    """
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: cleanplate checkpoint format_version {version!r} is not supported "
                f"(this cleanplate reads version {FORMAT_VERSION}; upgrade cleanplate)"
            )
        state = obj.get("state_dict")
        if not _is_state_dict(state):
            raise CheckpointError(f"{path}: cleanplate checkpoint has no usable 'state_dict'")
        arch = obj.get("architecture")
        if arch not in ARCHITECTURES and arch not in OWN_ARCHITECTURES:
            known = ", ".join([*ARCHITECTURES, *OWN_ARCHITECTURES])
            raise CheckpointError(f"{path}: unknown architecture {arch!r} (expected one of {known})")
        meta = obj.get("meta") or {}
        config = obj.get("config") or {}
        header = {
            "format": FORMAT,
            "format_version": version,
            "architecture": arch,
            "backbone": obj.get("backbone"),
            "config": dict(config) if isinstance(config, Mapping) else {},
            "meta": dict(meta) if isinstance(meta, Mapping) else {},
        }
        return dict(state), header
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for key in ("state_dict", "model_state_dict", "model"):
            if _is_state_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_state_dict(obj):
        raise CheckpointError(f"{path} is not a model state dict (got {type(obj).__name__} without tensors)")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module.") :]: v for k, v in state.items()}
    arch = "MattingRefine" if any(k.startswith("refiner.") for k in state) else "MattingBase"
    return state, {"format": "official", "format_version": None, "architecture": arch, "backbone": None, "meta": {}}


def infer_backbone(state: Mapping[str, torch.Tensor], path: str | os.PathLike = "checkpoint") -> str:
    """mobilenetv2 (``backbone.features.*``), resnet101 (``backbone.layer3.22.*``) or resnet50."""
    keys = list(state)
    if any(k.startswith("backbone.features.") for k in keys):
        return "mobilenetv2"
    if any(k.startswith("backbone.layer3.22.") for k in keys):
        return "resnet101"
    if any(k.startswith("backbone.layer1.") for k in keys):
        return "resnet50"
    first = keys[0] if keys else "(none)"
    raise CheckpointError(
        f"{path}: not a BGMv2 checkpoint (no 'backbone.features.*' or 'backbone.layer1.*' keys; first key {first!r})"
    )


def _shape(t: torch.Tensor | torch.Size | tuple) -> str:
    dims = tuple(t.shape if isinstance(t, torch.Tensor) else t)
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def first_mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str | None:
    """One sentence naming the first key that differs (missing, wrong shape, or unexpected); None if all match."""
    unexpected = [k for k in state if k not in expected]
    for key, want in expected.items():
        if key not in state:
            extra = f" (the checkpoint has unexpected key {unexpected[0]!r})" if unexpected else ""
            return f"checkpoint lacks key {key!r} of shape {_shape(want)}{extra}"
        got = state[key]
        if tuple(got.shape) != tuple(want.shape):
            return f"checkpoint key {key!r} has shape {_shape(got)}, expected {_shape(want)}"
    if unexpected:
        return f"checkpoint has unexpected key {unexpected[0]!r}"
    return None


def _expected_state(arch: str, backbone: str) -> dict[str, torch.Tensor]:
    """The state dict layout of the architecture, built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = ARCHITECTURES[arch](backbone)
    return model.state_dict()


def count_parameters(state: Mapping[str, torch.Tensor]) -> int:
    """Learnable parameters (BatchNorm running statistics excluded)."""
    return sum(
        math.prod(v.shape) for k, v in state.items() if v.is_floating_point() and not k.endswith(BUFFER_SUFFIXES)
    )


def _resolve(state: dict, header: dict, path: str | os.PathLike, backbone: str | None) -> str:
    inferred = infer_backbone(state, path)
    stored = header.get("backbone")
    if stored is not None and stored != inferred:
        raise CheckpointError(f"{path}: header says backbone {stored!r} but the weights are {inferred}")
    if backbone is not None:
        if backbone not in BACKBONES:
            raise InputError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        if backbone != inferred:
            raise CheckpointError(f"{path} is a {inferred} checkpoint, but backbone {backbone!r} was requested")
    return inferred


def inspect_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Describe a checkpoint without building the model: backbone, architecture, size, format, meta.

    Raises :class:`CheckpointError` when it is not a loadable BGMv2 checkpoint (naming the first
    mismatching key for a wrong architecture).
    """
    state, header = split_checkpoint(read_checkpoint(path), path)
    if header["architecture"] in OWN_ARCHITECTURES:
        _, info = _load_own(state, header, path, {})
        return {**info, "bytes": Path(path).stat().st_size}
    backbone = _resolve(state, header, path, None)
    problem = first_mismatch(state, _expected_state(header["architecture"], backbone))
    if problem:
        raise CheckpointError(f"{path}: {problem} for {header['architecture']}({backbone})")
    return {**_info(path, header, header["architecture"], backbone, state), "bytes": Path(path).stat().st_size}


def load_checkpoint(path: str | os.PathLike, **model_kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Build the right model for ``path`` and load its weights (float32, CPU, eval mode).

    ``model_kwargs`` go to the constructor (``backbone_scale``, ``refine_mode``, ...); a
    ``backbone`` that disagrees with the checkpoint is an error. Returns ``(model, info)`` with
    info as :func:`inspect_checkpoint`.
    """
    state, header = split_checkpoint(read_checkpoint(path), path)
    if header["architecture"] in OWN_ARCHITECTURES:
        return _load_own(state, header, path, model_kwargs)
    backbone = _resolve(state, header, path, model_kwargs.pop("backbone", None))
    arch = header["architecture"]
    if arch == "MattingBase" and model_kwargs:
        names = ", ".join(sorted(model_kwargs))
        raise InputError(f"{path} is a MattingBase checkpoint (no refiner); the options {names} do not apply")
    problem = first_mismatch(state, _expected_state(arch, backbone))
    if problem:
        raise CheckpointError(f"{path}: {problem} for {arch}({backbone})")
    try:
        model = ARCHITECTURES[arch](backbone, **model_kwargs)
    except InputError:
        raise
    except (TypeError, ValueError) as exc:
        raise InputError(str(exc).splitlines()[0]) from exc
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    info = _info(path, header, arch, backbone, state)
    return model, info


def _info(path, header: dict, arch: str, backbone: str | None, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """What load and inspect report about a checkpoint (``official_compatible``: the file itself
    loads in the original code, ``model.load_state_dict(torch.load(path))``)."""
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in state.values() if v.is_floating_point()})
    return {
        "path": str(path),
        "format": header["format"],
        "format_version": header["format_version"],
        "architecture": arch,
        "backbone": backbone,
        "parameters": count_parameters(state),
        "tensors": len(state),
        "dtype": ",".join(dtypes),
        "official_compatible": header["format"] == "official",
        "meta": header["meta"],
    }


def _load_own(
    state: dict[str, torch.Tensor], header: dict, path: str | os.PathLike, model_kwargs: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Build one of :data:`OWN_ARCHITECTURES` from the checkpoint's ``config`` and load its weights."""
    arch = header["architecture"]
    options = dict(model_kwargs)
    backbone = options.pop("backbone", None)
    if backbone is not None:
        raise InputError(f"{path} is a {arch} model, which has no BGMv2 backbone; drop --backbone")
    allowed = {"backbone_scale"}
    extra = sorted(k for k, v in options.items() if k not in allowed and v is not None)
    if extra:
        raise InputError(f"options {', '.join(extra)} do not apply to the {arch} model (it has no BGMv2 refiner)")
    config = {**header.get("config", {}), **{k: v for k, v in options.items() if v is not None}}
    for key in ("widths", "trust_hidden"):
        if key in config:
            config[key] = tuple(int(w) for w in config[key])
    try:
        with torch.device("meta"):
            expected = OWN_ARCHITECTURES[arch](**config).state_dict()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unusable {arch} config ({str(exc).splitlines()[0]})") from exc
    problem = first_mismatch(state, expected)
    if problem:
        raise CheckpointError(f"{path}: {problem} for {arch}")
    model = OWN_ARCHITECTURES[arch](**config)
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}, strict=True)
    return model.eval(), _info(path, header, arch, None, state)


def _plain(meta: Mapping | None) -> dict:
    """``meta`` reduced to JSON-like plain data so ``weights_only`` loading accepts it."""
    if not meta:
        return {}
    return json.loads(json.dumps(dict(meta), default=str))


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    meta: Mapping | None = None,
    half: bool = False,
    force: bool = True,
) -> Path:
    """Write ``model`` in the cleanplate format, atomically (temp file + rename).

    ``half`` stores floating tensors as float16 (half the size; cast back on load). ``force``
    defaults to True because training overwrites its own checkpoints; user-facing commands pass
    their ``--force`` flag.
    """
    arch = type(model).__name__
    config: dict[str, Any] = {}
    if isinstance(model, GuidedMatting):
        arch, backbone = "GuidedMatting", None
        config = {"widths": list(model.widths)}
        if model.subpixel:
            config["subpixel"] = True
        if model.trust is not None:
            config["pixel_trust"] = True
            if model.trust.hidden != (32, 32):  # the first heads' widths: their checkpoints name none
                config["trust_hidden"] = list(model.trust.hidden)
    else:
        if arch not in ARCHITECTURES:
            arch = "MattingRefine" if hasattr(model, "refiner") else "MattingBase"
        backbone = getattr(model, "backbone_name", None)
        if backbone not in BACKBONES:
            raise InputError(f"cannot save {type(model).__name__}: not a MattingBase/MattingRefine/GuidedMatting model")
    state = {
        k: (v.detach().to("cpu", torch.float16 if half else torch.float32) if v.is_floating_point() else v.cpu())
        for k, v in model.state_dict().items()
    }
    blob = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": arch,
        "backbone": backbone,
        "config": config,
        "state_dict": state,
        "meta": _plain(meta),
    }
    with atomic_path(path, force) as tmp:
        torch.save(blob, tmp)
    return Path(path)
