"""Regenerate the README's pictures of real (frame, plate) pairs with the built-in model.

    python docs/make_figures.py                    # writes docs/real_pairs.jpg and docs/carpark_result.jpg
    python docs/make_figures.py --model classical  # the same pairs with another model

Rows: frame | plate | alpha | composite over a checkerboard. The pairs come from
../shared/data/train/pairs: carpark (MIT, tripod) and frames of vtest.avi against the temporal
median of the clip (Apache-2.0 / BSD-3-Clause). ``--include-nc`` adds the handheld bgm1_rooftop
frames (``align=True``); that pair is CC-BY-NC-SA, so keep such a picture out of the repository.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import cleanplate
from cleanplate.io.image import read_image
from cleanplate.io.video import VideoReader

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT.parent / "shared" / "data" / "train" / "pairs"
CASES = [  # (frame: image file or "clip.avi#N", plate, align)
    ("carpark_src.jpg", "carpark_plate.jpg", False),
    ("vtest.avi#150", "vtest_plate_median.png", False),
    ("vtest.avi#600", "vtest_plate_median.png", False),
]
NC_CASES = [
    ("bgm1_rooftop_src_0500.png", "bgm1_rooftop_plate.png", True),
    ("bgm1_rooftop_src_1500.png", "bgm1_rooftop_plate.png", True),
]
ROW_HEIGHT = 270


def checkerboard(h: int, w: int, cell: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, 200, 150).astype(np.uint8)
    return np.repeat(board[..., None], 3, axis=2)


def read_frame(spec: str) -> np.ndarray:
    """An image file, or frame N of a clip written ``clip.avi#N``."""
    if "#" not in spec:
        return read_image(PAIRS / spec)
    name, index = spec.split("#")
    with VideoReader(PAIRS / name) as reader:
        for i, frame in enumerate(reader):
            if i == int(index):
                return frame.image
    raise SystemExit(f"{name} has fewer than {int(index) + 1} frames")


def row(matter, frame: str, plate: str, align: bool) -> np.ndarray:
    src, bgr = read_frame(frame), read_image(PAIRS / plate)
    matte = matter.matte(src, bgr, align=align)
    h, w = matte.size
    comp = matte.composite(checkerboard(h, w))
    alpha = np.repeat((matte.alpha * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    plate_img = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA) if bgr.shape[:2] != (h, w) else bgr
    tiles = [src, plate_img, alpha, comp]
    scale = ROW_HEIGHT / h
    size = (round(w * scale), ROW_HEIGHT)
    return np.concatenate([cv2.resize(t, size, interpolation=cv2.INTER_AREA) for t in tiles], axis=1)


def sample_figure(matter, output: Path) -> None:
    """The README's first picture: the bundled carpark sample, composited over green."""
    samples = ROOT / "src" / "cleanplate" / "samples"
    src, bgr = read_image(samples / "carpark_src.jpg"), read_image(samples / "carpark_plate.jpg")
    matte = matter.matte(src, bgr)
    alpha = np.repeat((matte.alpha * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
    tiles = [src, bgr, alpha, matte.composite("green")]
    h, w = src.shape[:2]
    size = (round(w * 300 / h), 300)
    image = np.concatenate([cv2.resize(t, size, interpolation=cv2.INTER_AREA) for t in tiles], axis=1)
    cv2.imwrite(str(output), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {output} ({image.shape[1]}x{image.shape[0]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "real_pairs.jpg")
    parser.add_argument("--sample-output", type=Path, default=ROOT / "docs" / "carpark_result.jpg")
    parser.add_argument("--include-nc", action="store_true", help="add the CC-BY-NC-SA rooftop pair")
    args = parser.parse_args()
    matter = cleanplate.load(args.model)
    cases = CASES + (NC_CASES if args.include_nc else [])
    rows = [row(matter, f, p, align) for f, p, align in cases]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    image = np.concatenate(rows, axis=0)
    cv2.imwrite(str(args.output), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.output} ({image.shape[1]}x{image.shape[0]})")
    sample_figure(matter, args.sample_output)


if __name__ == "__main__":
    main()
