"""ms/frame of the built-in models side by side, in one run: the plate-guided default against the
previous BGMv2 default (``bgmv2``) and the classical keyer.

    python benchmarks/default_speed.py                          # 1080p, 2 threads, 5 repeats
    python benchmarks/default_speed.py --sizes 720p,1080p --repeat 9 --models default,bgmv2
    python benchmarks/default_speed.py --handheld        # plate turned 0.5 deg and shifted 6 px

Each repeat runs every model once on the same frame pair (the bundled carpark sample resized to
the frame size), one after another, so load on the machine slows all of them alike; the table
reports the median and minimum over repeats after one warm-up, and each model's median over the
first model's. Models are loaded as ``cleanplate.load`` does (optimized path, automatic backbone
scale: 1/4 at 1080p), and timed through ``Matter.matte_tensor`` (what video and live call).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

SIZES = {"720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840)}


def frame_pair(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    import cv2

    from cleanplate.samples import sample_pair

    src_path, plate_path = sample_pair("carpark")

    def read(path) -> torch.Tensor:
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div_(255)

    return read(src_path), read(plate_path)


def handheld(plate: torch.Tensor) -> torch.Tensor:
    """The plate as a handheld camera would have shot it: turned 0.5 degrees, shifted 6 px right."""
    import cv2

    img = plate[0].permute(1, 2, 0).numpy()
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.5, 1.0)
    m[0, 2] += 6
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return torch.from_numpy(out).permute(2, 0, 1)[None].contiguous()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="default,bgmv2", help="built-in names or checkpoint paths")
    parser.add_argument("--sizes", default="1080p")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--handheld",
        action="store_true",
        help="turn the plate by 0.5 degrees and shift it by 6 px (the default model registers it itself)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import cleanplate

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    matters = {name: cleanplate.load(name, device="cpu") for name in names}
    print(f"torch {torch.__version__}, {args.threads} threads, {args.repeat} repeats", file=sys.stderr)
    rows = []
    for size in args.sizes.split(","):
        src, bgr = frame_pair(*SIZES[size])
        if args.handheld:
            bgr = handheld(bgr)
        times: dict[str, list[float]] = {name: [] for name in names}
        for rep in range(args.repeat + 1):
            for name, matter in matters.items():
                t0 = time.perf_counter()
                matter.matte_tensor(src, bgr)
                if rep:  # the first round warms up
                    times[name].append(time.perf_counter() - t0)
            print(f"{size}: round {rep}/{args.repeat}", file=sys.stderr)
        first = statistics.median(times[names[0]])
        for name in names:
            med = statistics.median(times[name])
            rows.append((size, name, med * 1e3, min(times[name]) * 1e3, med / first))
    print(f"| size | model | median ms | min ms | median / {names[0]} |")
    print("|---|---|---:|---:|---:|")
    for size, name, med, best, ratio in rows:
        print(f"| {size} | {name} | {med:.0f} | {best:.0f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
