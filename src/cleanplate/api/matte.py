"""The result of matting one frame (:class:`Matte`): alpha, straight foreground, and how to save it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..compose import background_array, composite, to_uint8
from ..errors import InputError
from ..io.image import write_image

SAVE_KINDS = ("rgba", "alpha", "fgr", "comp", "err", "ref", "shadow")
DEFAULT_BACKGROUND = "green"


@dataclass
class Matte:
    """The result for one frame. ``alpha`` H×W and ``foreground`` H×W×3 are float32 in [0, 1].

    ``foreground`` is straight (not premultiplied): composite as ``fg * a + bg * (1 - a)``.
    ``error`` (H×W float32) is the base network's error estimate, ``refined`` (H×W bool) marks
    the pixels the refiner recomputed; both may be None for models without them. ``shadow``
    (H×W float32, 1 = full shadow) is the subject's cast shadow when it was asked for
    (:mod:`cleanplate.pipeline.shadow`); ``keep_shadow`` multiplies it into composites.
    """

    alpha: np.ndarray
    foreground: np.ndarray
    error: np.ndarray | None = None
    refined: np.ndarray | None = None
    shadow: np.ndarray | None = None
    keep_shadow: float = 0.0

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
        return to_uint8(self._composite(background))

    def _composite(self, background: Any) -> np.ndarray:
        bg = background_array(background, self.size)
        if self.keep_shadow > 0 and self.shadow is not None:  # the new background darkened where the shadow fell
            bg = bg * (1 - self.keep_shadow * self.shadow[:, :, None])
        return composite(self.foreground, self.alpha, bg)

    def to_float(self, kind: str = "rgba", background: Any = DEFAULT_BACKGROUND) -> np.ndarray:
        """float32 image in [0, 1] for one of :data:`SAVE_KINDS` (straight alpha; for 16-bit and EXR files)."""
        zeros = np.zeros(self.size, np.float32)
        if kind == "rgba":
            return np.concatenate([self.foreground, self.alpha[:, :, None]], axis=2).astype(np.float32)
        if kind == "comp":
            return self._composite(background).astype(np.float32)
        layers = {
            "alpha": self.alpha,
            "fgr": self.foreground,
            "err": self.error,
            "ref": None if self.refined is None else self.refined.astype(np.float32),
            "shadow": self.shadow,
        }
        if kind not in layers:
            raise InputError(f"unknown output {kind!r}; choose from {', '.join(SAVE_KINDS)}")
        if kind == "shadow" and self.shadow is None:
            raise InputError("this matte has no shadow layer (it is computed when asked for: --save shadow)")
        layer = layers[kind]
        return np.clip(layer if layer is not None else zeros, 0, 1).astype(np.float32)

    def to_array(self, kind: str = "rgba", background: Any = DEFAULT_BACKGROUND) -> np.ndarray:
        """uint8 image for one of :data:`SAVE_KINDS` (what ``cleanplate image --save`` writes)."""
        if kind == "rgba":
            return self.rgba()
        if kind == "comp":
            return self.composite(background)
        if kind == "ref":
            ref = self.refined if self.refined is not None else np.zeros(self.size, bool)
            return ref.astype(np.uint8) * 255
        return to_uint8(self.to_float(kind, background))

    def save(
        self,
        path: str | os.PathLike,
        kind: str = "rgba",
        *,
        background: Any = DEFAULT_BACKGROUND,
        force: bool = False,
        depth: int = 8,
    ) -> Path:
        """Write one kind atomically; the format comes from the extension: .png (8-bit, or 16-bit with
        ``depth=16``), .tif/.webp (lossless), .jpg, or .exr (half float, RGBA premultiplied)."""
        suffix = Path(path).suffix.lower()
        if suffix == ".exr":
            from ..io.exr import write_exr

            return write_exr(path, self.to_float(kind, background), force=force)
        if depth not in (8, 16):
            raise InputError(f"bit depth must be 8 or 16; got {depth}")
        if depth == 16:
            if suffix != ".png":
                raise InputError(f"{Path(path).name}: 16-bit output is written as .png")
            from ..io.exr import write_png16

            return write_png16(path, self.to_float(kind, background), force=force)
        return write_image(path, self.to_array(kind, background), force=force)
