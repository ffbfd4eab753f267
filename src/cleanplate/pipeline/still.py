"""Still images through the same per-frame finishing as video: matte controls and the shadow layer.

``cleanplate image`` mattes with :meth:`cleanplate.Matter.matte_batch`; when controls or a shadow
are asked for, the plate each image was matted against (fitted or aligned) is kept, and the
result goes through the pure functions of :mod:`.controls` and :mod:`.shadow` that
:class:`~cleanplate.pipeline.frame.FrameStep` uses for every video and live frame.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..api.matte import Matte
from ..errors import InputError
from ..io.image import ImageLike, as_rgb
from ..plate.align import align_plate
from ..plate.fit import match_plate
from .controls import MatteControls, control_matte
from .shadow import shadow_layer


@dataclass(frozen=True)
class StillOptions:
    """Finishing for stills: the keyer controls, the shadow layer (``shadow``) and ``keep_shadow``."""

    controls: MatteControls = field(default_factory=MatteControls)
    shadow: bool = False
    keep_shadow: float = 0.0

    @property
    def active(self) -> bool:
        return self.controls.active or self.shadow or self.keep_shadow > 0

    def check(self) -> StillOptions:
        if not 0.0 <= self.keep_shadow <= 1.0:
            raise InputError(f"--keep-shadow must be in [0, 1]; got {self.keep_shadow}")
        self.controls.check()
        return self


def _tensor(image: np.ndarray) -> torch.Tensor:
    arr = np.ascontiguousarray(image, np.float32)
    return torch.from_numpy(arr if arr.ndim == 3 else arr[:, :, None]).permute(2, 0, 1)[None]


def finish_matte(matte: Matte, frame: np.ndarray, plate: np.ndarray, options: StillOptions) -> Matte:
    """``matte`` of ``frame`` (uint8 H×W×3) against ``plate`` (fitted to it) with the controls applied
    and, when asked for, its shadow layer."""
    alpha, fgr = matte.alpha, matte.foreground
    if options.controls.active:
        alpha, fgr = control_matte(alpha, fgr, frame, options.controls)
    shadow = None
    if options.shadow or options.keep_shadow > 0:
        with torch.inference_mode():
            s = shadow_layer(_tensor(frame) / 255, _tensor(plate) / 255, _tensor(alpha))
        shadow = s[0, 0].numpy().copy()
    return dataclasses.replace(matte, alpha=alpha, foreground=fgr, shadow=shadow, keep_shadow=options.keep_shadow)


def matte_stills(
    matter: Any,
    srcs: Sequence[ImageLike],
    plates: ImageLike | Sequence[ImageLike],
    *,
    align: bool = False,
    batch_size: int = 4,
    options: StillOptions | None = None,
) -> list[Matte]:
    """:meth:`Matter.matte_batch` followed by :func:`finish_matte` (which needs each fitted plate)."""
    options = (options or StillOptions()).check()
    if not options.active:
        return matter.matte_batch(srcs, plates, align=align, batch_size=batch_size)
    srcs = list(srcs)
    plate_list = list(plates) if isinstance(plates, (list, tuple)) else [plates] * len(srcs)
    if len(plate_list) != len(srcs):
        raise InputError(f"got {len(srcs)} frames but {len(plate_list)} plates (give one, or one per frame)")
    frames = [as_rgb(s, what="source") for s in srcs]
    fitted = []
    for frame, plate in zip(frames, plate_list, strict=True):
        p = as_rgb(plate, what="plate")
        fitted.append(align_plate(p, frame) if align else match_plate(p, frame.shape[:2]))
    mattes = matter.matte_batch(frames, fitted, batch_size=batch_size)
    return [finish_matte(m, f, p, options) for m, f, p in zip(mattes, frames, fitted, strict=True)]
