"""High-level API: ``cleanplate.load(...)`` → :class:`Matter`; ``Matter.matte(src, plate)`` → :class:`Matte`.

The network needs sizes divisible by 4 and a backbone scale that suits the resolution; this
module hides both: inputs of any size are padded (replicate) and cropped back, and
``backbone_scale`` is picked per call unless the user fixed it (see :func:`auto_backbone_scale`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .compose import background_array, composite, to_uint8
from .errors import CleanplateError, InputError, MissingDependencyError
from .io.image import ImageLike, as_rgb, write_image
from .models.matting import BACKBONES
from .models.refiner import CROP_METHODS, REFINE_MODES, REPLACE_METHODS
from .padding import crop_to, pad_to_multiple
from .plate.align import align_plate
from .plate.fit import match_plate

SAVE_KINDS = ("rgba", "alpha", "fgr", "comp", "err", "ref")
DEFAULT_BACKGROUND = "green"
BACKENDS = ("torch", "onnxruntime")
PRECISIONS = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.float32,  # tensors stay float32; convolutions run in bfloat16 (autocast, fast path)
}
REFINE_OPTIONS = (
    "backbone",
    "backbone_scale",
    "refine_mode",
    "refine_sample_pixels",
    "refine_threshold",
    "refine_kernel_size",
    "refine_prevent_oversampling",
    "refine_patch_crop_method",
    "refine_patch_replace_method",
)


def auto_backbone_scale(height: int, width: int) -> float:
    """Backbone scale for a frame: the base network should see roughly 256–640 px on the long side.

    long side ≤ 1024 → 1/2 (smaller frames keep enough detail for the base; measured on the
    held-out benchmark, 1/2 instead of 1/4 cut the default model's MAD by 40 % at 800 px), up to
    2560 → 1/4 (the BGMv2 setting for HD), above → 1/8 (4K).
    """
    long_side = max(height, width)
    if long_side <= 1024:
        return 0.5
    if long_side <= 2560:
        return 0.25
    return 0.125


# ----------------------------------------------------------------------------------------- Matte


@dataclass
class Matte:
    """The result for one frame. ``alpha`` H×W and ``foreground`` H×W×3 are float32 in [0, 1].

    ``foreground`` is straight (not premultiplied): composite as ``fg * a + bg * (1 - a)``.
    ``error`` (H×W float32) is the base network's error estimate, ``refined`` (H×W bool) marks
    the pixels the refiner recomputed; both may be None for models without them.
    """

    alpha: np.ndarray
    foreground: np.ndarray
    error: np.ndarray | None = None
    refined: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.alpha.shape[0], self.alpha.shape[1]

    def rgba(self) -> np.ndarray:
        """uint8 H×W×4, straight alpha (colour channels are the un-multiplied foreground)."""
        return np.concatenate([to_uint8(self.foreground), to_uint8(self.alpha)[:, :, None]], axis=2)

    def composite(self, background: Any = DEFAULT_BACKGROUND) -> np.ndarray:
        """uint8 H×W×3: the foreground over a colour ('green', '#00ff00', (r, g, b)), an image
        (path, PIL image or array; cover-resized: scaled to cover, centre-cropped) or an array of
        the same size."""
        bg = background_array(background, self.size)
        return to_uint8(composite(self.foreground, self.alpha, bg))

    def to_array(self, kind: str = "rgba", background: Any = DEFAULT_BACKGROUND) -> np.ndarray:
        """uint8 image for one of :data:`SAVE_KINDS` (what ``cleanplate image --save`` writes)."""
        if kind == "rgba":
            return self.rgba()
        if kind == "alpha":
            return to_uint8(self.alpha)
        if kind == "fgr":
            return to_uint8(self.foreground)
        if kind == "comp":
            return self.composite(background)
        if kind == "err":
            return to_uint8(self.error if self.error is not None else np.zeros(self.size, np.float32))
        if kind == "ref":
            ref = self.refined if self.refined is not None else np.zeros(self.size, bool)
            return ref.astype(np.uint8) * 255
        raise InputError(f"unknown output {kind!r}; choose from {', '.join(SAVE_KINDS)}")

    def save(
        self, path: str | os.PathLike, kind: str = "rgba", *, background: Any = DEFAULT_BACKGROUND, force: bool = False
    ) -> Path:
        """Write :meth:`to_array` atomically; format from the extension (.png, .tif, .webp lossless; .jpg)."""
        return write_image(path, self.to_array(kind, background), force=force)


# ---------------------------------------------------------------------------------------- Matter


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 H×W×3 → float (1, 3, H, W) in [0, 1]."""
    arr = np.ascontiguousarray(image)
    if not arr.flags.writeable:  # e.g. np.asarray(PIL image): torch warns on read-only memory
        arr = arr.copy()
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255)


def _check_pair(src: torch.Tensor, bgr: torch.Tensor) -> None:
    if not isinstance(src, torch.Tensor) or not isinstance(bgr, torch.Tensor):
        raise InputError("matte_tensor expects torch tensors; use Matter.matte for arrays, PIL images or paths")
    if src.ndim != 4 or src.shape[1] != 3:
        raise InputError(f"src must be (B, 3, H, W); got {tuple(src.shape)}")
    if bgr.shape != src.shape:
        raise InputError(f"src {tuple(src.shape)} and bgr {tuple(bgr.shape)} must have the same shape")
    if src.shape[0] < 1 or src.shape[2] < 1 or src.shape[3] < 1:
        raise InputError(f"src is empty: {tuple(src.shape)}")


class Matter:
    """A loaded matting model, ready to use; create it with :func:`cleanplate.load`.

    ``model`` is the torch module (None for non-torch backends), ``device`` the torch device,
    ``info`` what is known about the weights (format, backbone, meta, ...).
    """

    def __init__(
        self,
        model: nn.Module | None,
        *,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        backbone_scale: float | None = None,
        runner: Any = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.backbone_scale = backbone_scale  # None: chosen per call from the resolution
        self.info = dict(info or {})
        # What is actually called: the torch model or a backend runner with the same outputs.
        self._forward = runner if runner is not None else model

    def __repr__(self) -> str:
        name = self.info.get("name") or self.info.get("path") or type(self.model).__name__
        return f"Matter({name!r}, device={str(self.device)!r}, dtype={str(self.dtype).replace('torch.', '')})"

    def scale_for(self, height: int, width: int) -> float:
        return self.backbone_scale if self.backbone_scale is not None else auto_backbone_scale(height, width)

    def matte_tensor(
        self, src: torch.Tensor, bgr: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched low-level call: ``src``/``bgr`` (B, 3, H, W) float in [0, 1] (uint8 also accepted).

        Returns float32 tensors on :attr:`device`: alpha (B, 1, H, W), foreground (B, 3, H, W),
        error (B, 1, H, W) bilinearly upsampled, refined (B, 1, H, W) 0/1 nearest-upsampled.
        """
        _check_pair(src, bgr)
        with torch.inference_mode():
            src = self._prepare(src)
            bgr = self._prepare(bgr)
            h, w = src.shape[-2:]
            src_p, size = pad_to_multiple(src, 4)
            bgr_p, _ = pad_to_multiple(bgr, 4)
            if hasattr(self._forward, "backbone_scale"):
                self._forward.backbone_scale = self.scale_for(h, w)
            out = self._forward(src_p, bgr_p)
            pha, fgr = out[0], out[1]
            full = src_p.shape[-2:]
            if len(out) >= 6:  # MattingRefine-like: (pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm)
                err = F.interpolate(out[4].float(), full, mode="bilinear", align_corners=False)
                ref = F.interpolate(out[5].float(), full, mode="nearest")
            else:  # MattingBase-like: (pha, fgr, err, hid), nothing refined
                err = out[2].float() if len(out) > 2 else torch.zeros_like(pha, dtype=torch.float32)
                ref = torch.zeros_like(pha, dtype=torch.float32)
            return tuple(crop_to(t.float(), size).clamp_(0, 1) for t in (pha, fgr, err, ref))  # type: ignore[return-value]

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        elif not x.is_floating_point():
            raise InputError(f"tensors must be float in [0, 1] or uint8; got {x.dtype}")
        return x.to(self.device, self.dtype)

    def _pair_arrays(self, src: ImageLike, plate: ImageLike, align: bool) -> tuple[np.ndarray, np.ndarray]:
        frame = as_rgb(src, what="source")
        bgr = as_rgb(plate, what="plate")
        bgr = align_plate(bgr, frame) if align else match_plate(bgr, frame.shape[:2])
        return frame, bgr

    def matte(self, src: ImageLike, plate: ImageLike, *, align: bool = False) -> Matte:
        """Matte one frame against its clean plate (path, PIL image or uint8 H×W×3 RGB array each).

        The plate is used as is when its size matches, resized when only the aspect matches;
        ``align=True`` warps a handheld plate onto the frame (features + RANSAC homography) and
        falls back with a warning when that fails.
        """
        return self.matte_batch([src], plate, align=align)[0]

    def matte_batch(
        self,
        srcs: Sequence[ImageLike],
        plates: ImageLike | Sequence[ImageLike],
        *,
        align: bool = False,
        batch_size: int = 4,
    ) -> list[Matte]:
        """Matte several frames: one plate for all, or one plate per frame.

        Consecutive frames of the same size run as one batch of up to ``batch_size``.
        """
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1; got {batch_size}")
        srcs = list(srcs)
        one_plate = not isinstance(plates, (list, tuple))
        if one_plate:
            plate_list = [plates] * len(srcs)
        else:
            plate_list = list(plates)  # type: ignore[arg-type]
            if len(plate_list) != len(srcs):
                raise InputError(f"got {len(srcs)} frames but {len(plate_list)} plates (give one, or one per frame)")
        shared_raw: np.ndarray | None = None
        shared_sized: dict[tuple[int, int], np.ndarray] = {}
        results: list[Matte] = []
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        for src, plate in zip(srcs, plate_list, strict=True):
            if one_plate and not align:  # decode the shared plate once, resize once per frame size
                frame = as_rgb(src, what="source")
                if shared_raw is None:
                    shared_raw = as_rgb(plate, what="plate")
                key = frame.shape[:2]
                if key not in shared_sized:
                    shared_sized[key] = match_plate(shared_raw, key)
                pair = (frame, shared_sized[key])
            else:
                pair = self._pair_arrays(src, plate, align)
            if pending and (pending[0][0].shape != pair[0].shape or len(pending) >= batch_size):
                results.extend(self._run_arrays(pending))
                pending = []
            pending.append(pair)
        if pending:
            results.extend(self._run_arrays(pending))
        return results

    def _run_arrays(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[Matte]:
        src = torch.cat([_to_tensor(f) for f, _ in pairs])
        bgr = torch.cat([_to_tensor(b) for _, b in pairs])
        pha, fgr, err, ref = (t.cpu().numpy() for t in self.matte_tensor(src, bgr))
        return [
            Matte(
                alpha=np.ascontiguousarray(pha[i, 0]),
                foreground=np.ascontiguousarray(fgr[i].transpose(1, 2, 0)),
                error=np.ascontiguousarray(err[i, 0]),
                refined=ref[i, 0] > 0.5,
            )
            for i in range(len(pairs))
        ]


# ------------------------------------------------------------------------------------------ load


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


def validate_refine_options(options: dict[str, Any]) -> dict[str, Any]:
    """Check MattingRefine option values up front so mistakes read as one :class:`InputError` line."""
    unknown = sorted(set(options) - set(REFINE_OPTIONS))
    if unknown:
        raise InputError(f"unknown option {unknown[0]!r}; known options: {', '.join(REFINE_OPTIONS)}")
    opts = {k: v for k, v in options.items() if v is not None}
    checks = {
        "backbone": lambda v: v in BACKBONES,
        "refine_mode": lambda v: v in REFINE_MODES,
        "refine_patch_crop_method": lambda v: v in CROP_METHODS,
        "refine_patch_replace_method": lambda v: v in REPLACE_METHODS,
        "refine_kernel_size": lambda v: v in (1, 3),
    }
    choices = {
        "backbone": BACKBONES,
        "refine_mode": REFINE_MODES,
        "refine_patch_crop_method": CROP_METHODS,
        "refine_patch_replace_method": REPLACE_METHODS,
        "refine_kernel_size": (1, 3),
    }
    for key, ok in checks.items():
        if key in opts and not ok(opts[key]):
            raise InputError(f"unknown {key} {opts[key]!r}; choose one of {', '.join(map(str, choices[key]))}")
    if "backbone_scale" in opts:
        scale = _number(opts, "backbone_scale")
        if not 0 < scale <= 0.5:
            raise InputError(f"backbone_scale must be in (0, 0.5]; got {scale}")
    if "refine_sample_pixels" in opts:
        pixels = opts["refine_sample_pixels"]
        if isinstance(pixels, bool) or not isinstance(pixels, (int, np.integer)) or pixels < 16:
            raise InputError(f"refine_sample_pixels must be an integer >= 16; got {pixels!r}")
    if "refine_threshold" in opts:
        threshold = _number(opts, "refine_threshold")
        if not 0 <= threshold <= 1:
            raise InputError(f"refine_threshold must be in [0, 1]; got {threshold}")
    return opts


def _number(opts: dict[str, Any], key: str) -> float:
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{key} must be a number; got {value!r}")
    if not np.isfinite(value):
        raise InputError(f"{key} must be finite; got {value!r}")
    return float(value)


def _build_model(model: Any, options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    from .models.checkpoint import load_checkpoint
    from .models.registry import create_builtin, is_builtin

    net_options = {k: v for k, v in options.items() if k != "backbone_scale"}
    if isinstance(model, nn.Module):
        if net_options:
            raise InputError(f"options {', '.join(sorted(net_options))} cannot be applied to an existing module")
        return model, {"name": type(model).__name__, "format": "module"}
    if model is None:
        model = "default"
    if not isinstance(model, (str, os.PathLike)):
        raise InputError(f"model must be a checkpoint path or a built-in name; got {type(model).__name__}")
    path = Path(model)
    if is_builtin(str(model)) and not path.exists():
        if str(model) != "default" and options:
            raise InputError(f"options {', '.join(sorted(options))} do not apply to the {model} model")
        return create_builtin(str(model), **({} if str(model) != "default" else net_options))
    return load_checkpoint(path, **net_options)


def _ort_runner(model: nn.Module, device: torch.device, dtype: torch.dtype) -> Any:
    # ---- onnxruntime backend hook: the runner lives in cleanplate.export.runtime (speed helper). ----
    # Contract: OrtMatting.from_model(model, device=..., dtype=...) returns a callable taking padded
    # (B, 3, H, W) src/bgr tensors and returning MattingRefine's 6-tuple (torch tensors). If it has a
    # writable ``backbone_scale`` attribute, Matter sets it per call like on the torch model.
    try:
        from .export.runtime import OrtMatting  # type: ignore[import-not-found]
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
    ``refine_threshold``, ... ``precision`` 'fp16' needs CUDA.
    """
    options = validate_refine_options(refine_options)
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    if precision == "bf16" and not (fast and backend == "torch"):
        raise InputError("precision bf16 runs through the optimized torch path (backend torch, fast=True)")
    dev = resolve_device(device)
    dtype = PRECISIONS[precision]
    if dtype == torch.float16 and dev.type != "cuda":
        raise InputError("precision fp16 needs a CUDA device; use fp32 on CPU")
    net, info = _build_model(model, options)
    net = net.eval().to(dev, dtype)
    runner = _ort_runner(net, dev, dtype) if backend == "onnxruntime" else None
    # ---- speed helper: the optimized path (cleanplate.models.fast): same outputs within 1e-4 (fp32) ----
    # ``net`` stays the reference module (Matter.model); the runner holds its own folded copy.
    if backend == "torch" and fast:
        from .models.fast import optimize

        fast_net = optimize(net, precision="bf16" if precision == "bf16" else "fp32")
        runner = fast_net if fast_net is not net else None
    info = {**info, "backend": backend, "precision": precision, "fast": bool(fast and backend == "torch")}
    return Matter(
        net if backend == "torch" else None,
        device=dev,
        dtype=dtype,
        backbone_scale=options.get("backbone_scale"),
        runner=runner,
        info=info,
    )


__all__ = ["SAVE_KINDS", "CleanplateError", "Matte", "Matter", "auto_backbone_scale", "load"]
