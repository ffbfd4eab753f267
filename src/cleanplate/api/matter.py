"""The model handle: :class:`Matter` mattes frames of any size against their clean plates.

The network needs sizes divisible by 4 and a backbone scale that suits the resolution; this
module hides both: inputs of any size are padded (replicate) and cropped back, and
``backbone_scale`` is picked per call unless the user fixed it (see
:func:`cleanplate.options.auto_backbone_scale`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..io.image import ImageLike, as_rgb
from ..models.guided.register import measure_shift
from ..options import auto_backbone_scale, check_backbone_scale
from ..padding import crop_to, pad_to_multiple
from ..plate.align import align_plate
from ..plate.fit import PlateWarning, match_greyscale, match_plate, shift_note
from .matte import Matte


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


def _checked_pair(
    frame: np.ndarray, plate: np.ndarray, *, align: bool, index: int | None, tolerance: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Cheap checks of a fitted plate that would otherwise give a silently wrong matte.

    A greyscale frame gets a grey copy of a colour plate; a plate shifted against the frame by more
    than the model registers itself (``tolerance``, a fraction of the long side; without ``align``)
    is reported. Both warn (:class:`PlateWarning`).
    """
    plate, note = match_greyscale(plate, frame)
    if note is not None:
        warnings.warn(PlateWarning(note, index), stacklevel=3)
    if not align:
        offset = measure_shift(frame, plate, ignore_below=tolerance * max(frame.shape[:2]))
        note = shift_note(offset, frame.shape[:2], tolerance)
        if note is not None:
            warnings.warn(PlateWarning(note, index), stacklevel=3)
    return frame, plate


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

    def plate_shift_tolerance(self, height: int, width: int) -> float:
        """The plate shift, as a fraction of the long side, that this model registers by itself at
        this frame size; a plate shifted less is no reason to warn (0: the model compares pixel by pixel).

        The default (``GuidedMatting``) registers the plate inside the network (see
        :func:`cleanplate.models.guided.register.recovered_shift`); the keyer with ``align`` on
        registers it with features (:data:`cleanplate.models.classical.RECOVERED_SHIFT`).
        """
        arch = self.info.get("architecture")
        if arch == "GuidedMatting":
            from ..models.guided.register import recovered_shift

            return recovered_shift(round(max(height, width) * self.scale_for(height, width)))
        if arch == "ClassicalMatting" and getattr(getattr(self.model, "params", None), "align", False):
            from ..models.classical import RECOVERED_SHIFT

            return RECOVERED_SHIFT
        return 0.0

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
            if hasattr(self._forward, "backbone_scale"):
                if self.backbone_scale is not None:  # a fixed scale must leave the base network a few pixels
                    check_backbone_scale(self.backbone_scale, h, w)
                self._forward.backbone_scale = self.scale_for(h, w)
            # BGMv2 needs multiples of 4; GuidedMatting wants one working cell per k×k block
            multiple = max(4, int(getattr(self._forward, "pad_multiple", 4)))
            src_p, size = pad_to_multiple(src, multiple)
            bgr_p, _ = pad_to_multiple(bgr, multiple)
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
        for index, (src, plate) in enumerate(zip(srcs, plate_list, strict=True)):
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
            tolerance = self.plate_shift_tolerance(*pair[0].shape[:2])
            pair = _checked_pair(*pair, align=align, index=index if len(srcs) > 1 else None, tolerance=tolerance)
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
