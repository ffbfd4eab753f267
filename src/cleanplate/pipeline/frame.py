"""One per-frame step, shared by ``cleanplate video`` and ``cleanplate live``.

For each batch of frames: the plate (fitted to the frame size, or aligned to every frame) →
colour match → matte → smooth → render. The step is stateful across frames: the previous matte
tells the plate tracker and the colour matcher where the background is, and the smoother what the
last matte was. Per-frame features (matte controls, a shadow layer) belong here: a new stage
between :meth:`FrameStep.matte`'s stages reads and writes :class:`Mattes`, a new output is a
kind in :meth:`FrameStep.render`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..plate.color import ColorMatcher
from ..plate.fit import match_plate
from ..plate.track import AlignStats, PlateAligner
from .controls import Controls, MatteControls
from .render import render, to_device
from .shadow import shadow_layer
from .smooth import MatteSmoother


@dataclass(frozen=True)
class FrameOptions:
    """What the step does besides matting (``--align``, ``--match-color``, ``--smooth``, the matte
    controls, ``--keep-shadow``)."""

    align: bool = False  # per-frame plate alignment (handheld / drifting camera)
    match_color: bool = False  # per-frame exposure / white-balance matching of the plate
    smooth: float = 0.0  # temporal matte smoothing strength in [0, 1)
    controls: MatteControls = field(default_factory=MatteControls)  # choke, feather, levels, masks
    shadow: bool = False  # compute the shadow layer (a shadow output asks for it; keep_shadow implies it)
    keep_shadow: float = 0.0  # multiply the shadow into composites, at this strength in [0, 1]

    @classmethod
    def of(cls, options: Any) -> FrameOptions:
        """The step's options taken by name from a job's options (video, live); missing ones default."""
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls) if hasattr(options, f.name)})

    def check(self) -> FrameOptions:
        if not 0.0 <= self.smooth < 1.0:
            raise InputError(f"--smooth must be in [0, 1); got {self.smooth}")
        if not 0.0 <= self.keep_shadow <= 1.0:
            raise InputError(f"--keep-shadow must be in [0, 1]; got {self.keep_shadow}")
        self.controls.check()
        return self

    @property
    def wants_shadow(self) -> bool:
        return self.shadow or self.keep_shadow > 0


@dataclass
class Mattes:
    """A batch after the step, on the inference device: what later stages and outputs may read.

    ``src`` (B, 3, H, W) the frames, ``plate`` ((B or 1), 3, H, W) the plate each was matted
    against (aligned, colour-matched), ``alpha`` (B, 1, H, W) and ``fgr`` (B, 3, H, W) float32
    (after the matte controls), ``shadow`` (B, 1, H, W) the cast-shadow layer when asked for.
    """

    src: torch.Tensor
    plate: torch.Tensor
    alpha: torch.Tensor
    fgr: torch.Tensor
    shadow: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.src.shape[0]


class FrameStep:
    """Mattes successive batches of one video or camera against one plate; see the module docstring.

    ``matter``: anything with ``matte_tensor`` and ``device`` (a :class:`cleanplate.Matter`).
    ``plate``: uint8 H×W×3 RGB, any size of the frame's aspect (or any, with ``align``).
    """

    def __init__(self, matter: Any, plate: np.ndarray, size: tuple[int, int], options: FrameOptions) -> None:
        self.matter = matter
        self.options = options.check()
        self.size = (int(size[0]), int(size[1]))
        self.device = torch.device(getattr(matter, "device", "cpu"))
        self.aligner = PlateAligner(plate, self.size) if options.align else None
        self.plate_t: torch.Tensor | None = None
        if self.aligner is None:
            self.plate_t = to_device(torch.from_numpy(np.array(match_plate(plate, self.size))[None]), self.device)
        self.color = ColorMatcher() if options.match_color else None
        self.smoother = MatteSmoother(options.smooth) if options.smooth > 0 else None
        self.controls = Controls(options.controls, self.size, self.device) if options.controls.active else None
        self.prev_alpha: torch.Tensor | None = None  # (1, 1, H, W): the last frame's matte
        self._prev_alpha_np: np.ndarray | None = None  # the same for the tracker (only with align)

    @property
    def align_stats(self) -> AlignStats | None:
        return self.aligner.stats if self.aligner is not None else None

    # stages -------------------------------------------------------------------------------------
    def plates(self, images: np.ndarray | None, count: int) -> torch.Tensor:
        """The plate for each frame: ``(count or 1, 3, H, W)``; ``images`` (B, H, W, 3) uint8 with align."""
        if self.aligner is None:
            assert self.plate_t is not None
            return self.plate_t.expand(count, -1, -1, -1)
        if images is None:
            raise ValueError("per-frame alignment needs the frames as uint8 arrays")
        plates = torch.from_numpy(np.stack([self.aligner.warp(img, self._prev_alpha_np) for img in images]))
        return to_device(plates.pin_memory() if self.device.type == "cuda" else plates, self.device)

    def matte(self, src: torch.Tensor, images: np.ndarray | None = None) -> Mattes:
        """Plate → colour match → matte → smooth → controls → shadow for ``src`` (B, 3, H, W) float in
        [0, 1] on the device.

        ``images``: the same frames as uint8 (B, H, W, 3) arrays, needed for per-frame alignment.
        Frames of one batch share the matte of the frame before the batch.
        """
        with torch.inference_mode():
            bgr = self.plates(images, len(src))
            if self.color is not None:
                bgr = self.color(src, bgr, self.prev_alpha)
            alpha, fgr = self.matter.matte_tensor(src, bgr)[:2]
            alpha, fgr = alpha.float(), fgr.float()
            if self.smoother is not None:
                alpha = self.smoother(alpha, src)
            if self.controls is not None:  # a garbage mask also tells the tracker where background is
                alpha, fgr = self.controls(alpha, fgr, src)
            self.prev_alpha = alpha[-1:]
            if self.aligner is not None:
                self._prev_alpha_np = alpha[-1, 0].cpu().numpy()
            shadow = shadow_layer(src, bgr, alpha) if self.options.wants_shadow else None
            return Mattes(src, bgr, alpha, fgr, shadow)

    def render(
        self, kind: str, mattes: Mattes, background: torch.Tensor | None = None, sample: str = "uint8"
    ) -> torch.Tensor:
        """(B, H, W, C) for one output kind (rgba, alpha, fgr, shadow, comp over ``background``);
        uint8, or float32 for ``sample="float"`` (16-bit and EXR outputs)."""
        return render(
            kind,
            mattes.alpha,
            mattes.fgr,
            background,
            shadow=mattes.shadow,
            keep_shadow=self.options.keep_shadow,
            sample=sample,
        )
