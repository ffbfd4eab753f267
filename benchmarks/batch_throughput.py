"""``cleanplate batch`` throughput against the number of workers on this machine, side by side.

    python benchmarks/batch_throughput.py                        # 24 images 360x480, default model
    python benchmarks/batch_throughput.py --images 48 --size 720x1280 --workers 1,2,4 --model classical

Runs the same folder of synthetic image pairs through the local path (one process, torch limited
to one thread so a "worker" means one core everywhere) and through a local Ray with 1, 2, ...
image actors of one CPU each. Ray starts once before the timings; each Ray timing includes its
actors starting and loading the model, which is what a user waits for. Every run writes into a
fresh folder. Prints a markdown table to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_images(folder: Path, n: int, h: int, w: int) -> Path:
    """``n`` frames (a disc moving over a textured plate) and the plate."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    plate = np.stack([x * 255 / w, y * 255 / h, 128 + 60 * np.sin(x / 17.0) * np.cos(y / 23.0)], axis=2)
    plate = np.clip(plate + rng.normal(0, 3, plate.shape), 0, 255).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        src = plate.copy()
        cx = w * (0.2 + 0.6 * i / max(1, n - 1))
        src[(y - h / 2) ** 2 + (x - cx) ** 2 < (min(h, w) / 4) ** 2] = (220, 60, 190)
        Image.fromarray(src).save(folder / f"shot{i:04d}.png")
    Image.fromarray(plate).save(folder / "plate.png")
    return folder / "plate.png"


def timed(folder: Path, plate: Path, out: Path, model: dict, ray_opts) -> tuple[float, int]:
    from cleanplate.batch import BatchConfig, JobDefaults, load_jobs, run_batch

    items = load_jobs(folder, JobDefaults(outdir=out, plate=plate, save=("rgba", "alpha")))
    t0 = time.perf_counter()
    summary = run_batch(items, BatchConfig(outdir=out, model_params=model, ray=ray_opts, progress=False))
    seconds = time.perf_counter() - t0
    if not summary.ok:
        raise SystemExit(f"benchmark run failed:\n{summary.table()}")
    return seconds, summary.count("done")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", default="360x480", help="HxW")
    parser.add_argument("--workers", default="1,2", help="Ray image actors to time, comma list")
    parser.add_argument("--model", default="default")
    parser.add_argument("--batch-size", type=int, default=2, help="images per actor call")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.lower().split("x"))
    counts = [int(v) for v in args.workers.split(",")]
    model = {"model": args.model, "device": "cpu"}

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="cp-batch-bench-") as tmp:
        root = Path(tmp)
        plate = make_images(root / "in", args.images, h, w)
        rows = []
        print(f"local, 1 process ({args.images} images {h}x{w}) ...", file=sys.stderr)
        seconds, n = timed(root / "in", plate, root / "local", model, None)
        rows.append(("local (in-process)", 1, seconds, n))

        import ray

        os.environ.setdefault("RAY_worker_niceness", "0")  # same priority as the local run it is compared with

        from cleanplate.batch import RayOptions

        ray.init(num_cpus=max(counts), include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            for k in counts:
                print(f"ray, {k} actor(s) ...", file=sys.stderr)
                opts = RayOptions(workers=k, cpus_per_worker=1, batch_size=args.batch_size)
                seconds, n = timed(root / "in", plate, root / f"ray{k}", model, opts)
                rows.append(("ray data (actors)", k, seconds, n))
        finally:
            ray.shutdown()

    base = rows[1][2] if len(rows) > 1 else rows[0][2]
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, model {args.model}, "
        f"{args.images} images {h}x{w}, outputs rgba+alpha\n"
    )
    print("| path | workers | seconds | images/s | vs 1 Ray worker |")
    print("|---|---:|---:|---:|---:|")
    for name, k, seconds, n in rows:
        print(f"| {name} | {k} | {seconds:.1f} | {n / seconds:.2f} | {base / seconds:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
