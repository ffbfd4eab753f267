"""Regenerate the README's 1:1 edge crops: the same hair and edge regions matted by several models.

    python docs/make_crops.py                                     # default vs classical vs fast vs bgmv2
    python docs/make_crops.py --models default,classical -o /tmp/crops.jpg

Each row is one region at 1:1 pixels (no resampling): the frame, then each model's foreground
composited over a saturated magenta, where a halo of the old background and hair drawn as a
blob both show at once. Rows: the held-out people of the benchmark (VideoMatte240K and P3M-10k,
MIT) composited over held-out backgrounds exactly as ``cleanplate eval`` builds its ``low`` level
(aligned plate), the bundled carpark pair (MIT, real photo and plate) and the curly hair of the real
handheld rooftop pair (frame 0500 and its plate, registered with ``align=True``; from the
BackgroundMattingV2 authors under CC BY-NC-SA 4.0, shown here as that licence allows, never used
to train a shipped model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

import cleanplate
from cleanplate.compose import to_uint8
from cleanplate.eval.benchmark import synthetic_cases
from cleanplate.io.image import read_image

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "train"
CROP = 200
MAGENTA = np.float32([0.85, 0.1, 0.75])
# (case, top-left y, x of the crop as fractions of the case's size): hair edges of the held-out people
CASES = [("vm_valid_00011", 0.0, 0.36), ("p3m_p_0a78cf02", 0.02, 0.36)]


def crop_at(img: np.ndarray, fy: float, fx: float) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = min(int(fy * h), h - CROP), min(int(fx * w), w - CROP)
    return img[y : y + CROP, x : x + CROP]


def over_magenta(alpha: np.ndarray, fgr: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return to_uint8(fgr * a + MAGENTA * (1 - a))


def label(tile: np.ndarray, text: str) -> np.ndarray:
    out = tile.copy()
    cv2.rectangle(out, (0, 0), (CROP, 16), (30, 30, 30), -1)
    cv2.putText(out, text, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def pairs() -> list[tuple[str, np.ndarray, np.ndarray, float, float]]:
    """(name, frame, plate, fy, fx) float32 RGB: the held-out people, the carpark pair, the rooftop pair."""
    out = []
    wanted = {name: (fy, fx) for name, fy, fx in CASES}
    for case in synthetic_cases(DATA / "gt", DATA / "backgrounds", subjects=list(wanted), levels=("low",)):
        fy, fx = wanted[case.subject]
        out.append((case.name, case.src, case.plate, fy, fx))
    samples = ROOT / "src" / "cleanplate" / "samples"
    src = read_image(samples / "carpark_src.jpg").astype(np.float32) / 255
    plate = read_image(samples / "carpark_plate.jpg").astype(np.float32) / 255
    out.append(("carpark (real pair)", src, plate, 0.12, 0.34))
    roof = DATA / "pairs"
    if (roof / "bgm1_rooftop_plate.png").exists():
        src = read_image(roof / "bgm1_rooftop_src_0500.png").astype(np.float32) / 255
        plate = read_image(roof / "bgm1_rooftop_plate.png").astype(np.float32) / 255
        out.append(("rooftop (real, handheld)", src, plate, 0.17, 0.325))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="default,classical,fast,bgmv2")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "edge_crops.jpg")
    args = parser.parse_args()
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    matters = {m: cleanplate.load(m) for m in names}
    rows = []
    for title, src, plate, fy, fx in pairs():
        src8, plate8 = to_uint8(src), to_uint8(plate)
        tiles = [label(crop_at(src8, fy, fx), title[:28])]
        for name, matter in matters.items():
            matte = matter.matte(src8, plate8, align="handheld" in title)
            tiles.append(label(crop_at(over_magenta(matte.alpha, matte.foreground), fy, fx), name))
        rows.append(np.concatenate(tiles, axis=1))
    image = np.concatenate(rows, axis=0)
    cv2.imwrite(str(args.output), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(f"wrote {args.output} ({image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
    main()
