"""Redraw the README's VFX picture: a plate built from a clip, and the shadow layer.

    python docs/make_vfx_figure.py                    # writes docs/vfx.png (classical keyer)
    python docs/make_vfx_figure.py --model default

Row 1, a real clip (vtest.avi from ../shared/data/train/pairs; OpenCV samples, Apache-2.0 /
BSD-3-Clause): a frame | the plate ``--plate auto`` builds from the clip itself | its confidence
| the never-seen mask (red) over the plate. Row 2, a synthetic cast shadow (a VideoMatte subject
over a Kodak photo, darkened by a soft, sheared copy of its own alpha): the frame | the shadow
layer | the composite over a new background without and with ``--keep-shadow``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

import cleanplate
from cleanplate.pipeline.shadow import shadow_composite, shadow_layer
from cleanplate.plate.auto import AutoPlateOptions, plate_from_subject_clip

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "train"
HEIGHT = 240


def _fit(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, 2)
    w = round(img.shape[1] * HEIGHT / img.shape[0])
    return cv2.resize(img, (w, HEIGHT), interpolation=cv2.INTER_AREA)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (8 + 8 * len(text), 22), (0, 0, 0), -1)
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def plate_row(matter) -> list[np.ndarray]:
    clip = DATA / "pairs" / "vtest.avi"
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        result = plate_from_subject_clip(clip, matter, options=AutoPlateOptions(frames=21, rounds=3), end=40.0)
    from cleanplate.io.video_reader import VideoReader

    with VideoReader(clip, frame_range=(150, 151)) as reader:
        frame = next(iter(reader)).image
    never = result.plate.copy()
    never[result.never_seen] = (255, 0, 0)
    conf = (result.confidence * 255).astype(np.uint8)
    share = 100 * result.never_seen_fraction
    return [
        _label(_fit(frame), "frame 150"),
        _label(_fit(result.plate), f"--plate auto ({result.frames} frames)"),
        _label(_fit(conf), "confidence"),
        _label(_fit(never), f"never seen: {share:.1f} %"),
    ]


def shadow_row() -> list[np.ndarray]:
    h, w = 360, 480
    bg = cv2.cvtColor(cv2.imread(str(DATA / "backgrounds" / "kodak_kodim01.jpg")), cv2.COLOR_BGR2RGB)
    plate = cv2.resize(bg, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    fgr = cv2.cvtColor(cv2.imread(str(DATA / "gt" / "vm_train_00001_fgr.png")), cv2.COLOR_BGR2RGB)
    pha = cv2.imread(str(DATA / "gt" / "vm_train_00001_pha.png"), cv2.IMREAD_GRAYSCALE)
    ys, xs = np.where(pha > 10)
    fgr, pha = fgr[ys.min() : ys.max(), xs.min() : xs.max()], pha[ys.min() : ys.max(), xs.min() : xs.max()]
    sh = int(h * 0.85)
    sw = round(pha.shape[1] * sh / pha.shape[0])
    fgr = cv2.resize(fgr, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    pha = cv2.resize(pha, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    x0 = w // 3
    alpha = np.zeros((h, w), np.float32)
    alpha[h - sh :, x0 : x0 + sw] = pha
    f = np.zeros((h, w, 3), np.float32)
    f[h - sh :, x0 : x0 + sw] = fgr
    # the cast shadow: the alpha squashed onto the floor and sheared to the right, softened
    m = np.float32([[1, -0.7, 0.7 * h], [0, 0.45, 0.55 * h]])
    cast = cv2.GaussianBlur(cv2.warpAffine(alpha, m, (w, h)), (0, 0), 4) * 0.6
    truth = cast * (1 - alpha)
    rng = np.random.default_rng(0)
    img = f * alpha[..., None] + plate * (1 - truth[..., None]) * (1 - alpha[..., None])
    frame = np.clip(img + rng.normal(0, 2 / 255, img.shape), 0, 1).astype(np.float32)

    def t(x):
        return torch.from_numpy(np.ascontiguousarray(x if x.ndim == 3 else x[..., None])).permute(2, 0, 1)[None]

    s = shadow_layer(t(frame), t(plate), t(alpha))
    new_bg = torch.tensor([0.85, 0.8, 0.7]).view(1, 3, 1, 1) * torch.linspace(0.8, 1.0, h).view(1, 1, h, 1)
    plain = shadow_composite(t(fgr_full := f), t(alpha), new_bg, torch.zeros_like(s), 0.0)
    kept = shadow_composite(t(fgr_full), t(alpha), new_bg, s, 1.0)
    error = float(np.abs(s[0, 0].numpy() - truth)[alpha < 0.01].mean())

    def u8(x):
        arr = x[0].permute(1, 2, 0).numpy() if isinstance(x, torch.Tensor) else x
        return (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)

    return [
        _label(_fit(u8(frame)), "frame (cast shadow)"),
        _label(_fit(u8(1 - s[0, 0].numpy())), f"shadow layer (as 1-s; error {error:.3f})"),
        _label(_fit(u8(plain)), "comp"),
        _label(_fit(u8(kept)), "comp --keep-shadow"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="classical")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "vfx.png")
    args = parser.parse_args()
    matter = cleanplate.load(args.model, device="cpu")
    rows = [plate_row(matter), shadow_row()]
    width = max(sum(img.shape[1] for img in row) for row in rows)
    lines = [
        np.pad(np.concatenate(row, 1), ((0, 4), (0, width - sum(i.shape[1] for i in row)), (0, 0))) for row in rows
    ]
    cv2.imwrite(
        str(args.out), cv2.cvtColor(np.concatenate(lines, 0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
