"""Backgrounds for composites: a colour, an image, a video (looped or held), or the blurred frame.

A background video is read frame by frame next to the input (in the decode thread), cover-resized
to the frame size, and either looped when shorter than the input or held on its last frame;
a longer one is simply cut at the input's length.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ..compose import cover_resize, is_color, parse_color
from ..errors import InputError
from ..io.image import is_image_path
from ..io.video_reader import VideoReader

BLUR = "blur"


class Background:
    """Per-frame background images (uint8 H×W×3) for one frame size; iterate with :meth:`frames`.

    ``spec``: a colour ('green', '#00ff00', 'r,g,b'), an image path, a video path, or 'blur'
    (the frame itself, blurred — :meth:`needs_frame`).
    """

    def __init__(self, spec: str | Path | None, size: tuple[int, int], *, loop: bool = True) -> None:
        self.spec = "green" if spec is None else spec
        self.size = (int(size[0]), int(size[1]))
        self.loop = loop
        self.kind: str
        self._still: np.ndarray | None = None
        text = str(self.spec)
        if text == BLUR:
            self.kind = BLUR
        elif is_color(text):
            self.kind = "color"
            self._still = np.broadcast_to(np.asarray(parse_color(text), np.uint8), (*self.size, 3))
        else:
            path = Path(text)
            if not path.exists():
                raise InputError(f"background {text!r} is neither a colour (name, #rrggbb, r,g,b) nor a file")
            if is_image_path(path):
                from ..io.image import read_image

                self.kind = "image"
                self._still = np.ascontiguousarray(cover_resize(read_image(path), self.size))
            else:
                self.kind = "video"
                self.path = path
                VideoReader(path).close()  # probe now: a bad file fails before any work

    @property
    def is_still(self) -> bool:
        return self._still is not None

    @property
    def still(self) -> np.ndarray | None:
        """The constant background (colour or image), or None for video and blur."""
        return self._still

    @property
    def needs_frame(self) -> bool:
        return self.kind == BLUR

    def blur(self, frame: np.ndarray) -> np.ndarray:
        """A strongly blurred copy of ``frame`` (the 'portrait mode' background)."""
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), 3)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    def frames(self) -> Iterator[np.ndarray]:
        """Endless backgrounds for frames 0, 1, 2, … (video: looped or last frame held)."""
        if self._still is not None:
            while True:
                yield self._still
        if self.kind != "video":
            raise InputError("a blurred background is made from each frame (use blur(frame))")
        last: np.ndarray | None = None
        while True:
            with VideoReader(self.path) as reader:
                for frame in reader:
                    last = np.ascontiguousarray(cover_resize(frame.image, self.size))
                    yield last
            if last is None:
                raise InputError(f"background video {self.path} has no frames")
            if not self.loop:
                while True:
                    yield last
