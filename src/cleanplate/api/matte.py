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

SAVE_KINDS = ("rgba", "alpha", "fgr", "comp", "err", "ref")
DEFAULT_BACKGROUND = "green"


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
