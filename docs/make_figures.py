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
from cleanplate.eval.report import checkerboard
from cleanplate.io.image import read_image
from cleanplate.io.video_reader import VideoReader

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


def tiles(src: np.ndarray, plate: np.ndarray, matte, background, height: int) -> np.ndarray:
    """One row: frame | plate | alpha | composite over ``background``, scaled to ``height``."""
    h, w = matte.size
    if plate.shape[:2] != (h, w):
        plate = cv2.resize(plate, (w, h), interpolation=cv2.INTER_AREA)
    alpha = np.repeat(matte.to_array("alpha")[..., None], 3, axis=2)
    size = (round(w * height / h), height)
    images = [src, plate, alpha, matte.composite(background)]
    return np.concatenate([cv2.resize(t, size, interpolation=cv2.INTER_AREA) for t in images], axis=1)


def write_jpeg(image: np.ndarray, path: Path) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {path} ({image.shape[1]}x{image.shape[0]})")


def row(matter, frame: str, plate: str, align: bool) -> np.ndarray:
    src, bgr = read_frame(frame), read_image(PAIRS / plate)
    matte = matter.matte(src, bgr, align=align)
    return tiles(src, bgr, matte, checkerboard(*matte.size), ROW_HEIGHT)


def sample_figure(matter, output: Path) -> None:
    """The README's first picture: the bundled carpark sample, composited over green."""
    samples = ROOT / "src" / "cleanplate" / "samples"
    src, bgr = read_image(samples / "carpark_src.jpg"), read_image(samples / "carpark_plate.jpg")
    write_jpeg(tiles(src, bgr, matter.matte(src, bgr), "green", 300), output)


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
    write_jpeg(np.concatenate(rows, axis=0), args.output)
    sample_figure(matter, args.sample_output)


if __name__ == "__main__":
    main()
