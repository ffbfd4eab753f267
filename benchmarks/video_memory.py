"""Max RSS of ``cleanplate video`` on a short and a long clip: memory must be flat in the video's length.

    python benchmarks/video_memory.py                          # 60 vs 300 frames, 640x360, default model
    python benchmarks/video_memory.py --frames 60 300 795 --model classical
    python benchmarks/video_memory.py --cache 1024             # oneDNN's own default cache, for comparison

Each run is a fresh ``python -m cleanplate video`` process (composite H.264 output); its peak
resident memory comes from ``os.wait4`` (the kernel's ru_maxrss of that child only). The clip is
synthetic and procedural: a subject (an ellipse with a wobbling outline, so the refiner's patch
count changes from frame to frame as it does on real footage) crossing a textured background.

Acceptance (issue 15): the longest clip's max RSS within 10 % of the shortest one's. Before the
fix, oneDNN cached a compiled primitive for every distinct patch count (up to 1024), and max RSS
grew from 630 MB at 60 frames to 872 MB at 795 (640x360).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def synthetic_clip(path: Path, size: tuple[int, int], frames: int, rate: int = 30) -> np.ndarray:
    """Write an H.264 clip of a wobbling ellipse crossing a textured plate; return the plate."""
    h, w = size
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    plate = np.stack([x / w, y / h, 0.5 + 0.25 * np.sin(x / 17) * np.cos(y / 23)], axis=2) * 200 + 20
    plate = np.clip(plate + rng.normal(0, 6, plate.shape), 0, 255).astype(np.uint8)
    angle = np.arctan2(y - h / 2, x - w / 2)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            t = (i % 120) / 119  # crosses the frame every 4 s, so every clip length sees the same motion
            cx, cy = w * (0.2 + 0.6 * t), h * 0.55
            r = 1 + 0.15 * np.sin(5 * angle + i * 0.7)
            inside = ((x - cx) / (0.12 * w)) ** 2 + ((y - cy) / (0.35 * h)) ** 2 < r**2
            frame = plate.copy()
            frame[inside] = (np.array([200, 60, 40]) + rng.normal(0, 8, (int(inside.sum()), 3))).clip(0, 255)
            frame = np.clip(frame.astype(np.int16) + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    return plate


def max_rss_mb(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(max RSS in MB, wall seconds) of one child process running ``args``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}): {' '.join(args)}\n{err}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0  # ru_maxrss is in KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[60, 300])
    parser.add_argument("--size", default="640x360", help="WxH")
    parser.add_argument("--model", default="default")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the runs")
    parser.add_argument("--cache", type=int, default=None, help="ONEDNN_PRIMITIVE_CACHE_CAPACITY (default: the CLI's)")
    parser.add_argument("--tolerance", type=float, default=0.10, help="allowed growth, shortest to longest")
    opts = parser.parse_args(argv)
    w, h = (int(v) for v in opts.size.lower().split("x"))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if opts.threads:
        env["OMP_NUM_THREADS"] = str(opts.threads)
    if opts.cache is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(opts.cache)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for n in sorted(opts.frames):
            clip = folder / f"clip{n}.mp4"
            plate = synthetic_clip(clip, (h, w), n)
            plate_path = folder / "plate.png"
            from PIL import Image

            Image.fromarray(plate).save(plate_path)
            out = folder / f"out{n}.mp4"
            args = [sys.executable, "-m", "cleanplate", "video", str(clip), "--plate", str(plate_path), "-o", str(out)]
            rss, seconds = max_rss_mb([*args, "-m", opts.model, "-q", "--force", "--no-audio"], env)
            results.append((n, rss, seconds))
            print(f"{n:5d} frames  {w}x{h}  max RSS {rss:7.1f} MB  ({seconds:.1f} s)", flush=True)
    first, last = results[0][1], results[-1][1]
    growth = last / first - 1
    ok = growth <= opts.tolerance
    print(f"growth {results[0][0]} -> {results[-1][0]} frames: {growth * 100:+.1f} % ({'ok' if ok else 'TOO MUCH'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
