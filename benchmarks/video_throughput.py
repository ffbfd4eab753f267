"""End-to-end video fps vs model-only fps, at 720p and 1080p, side by side.

    python benchmarks/video_throughput.py                  # 720p + 1080p, 8 frames, 3 runs each
    python benchmarks/video_throughput.py --frames 48 --output rgba-mov --sizes 1080p

*model-only*: ``Matter.matte_tensor`` on frames already decoded into memory (the best the
pipeline could do). *end-to-end*: ``process_video`` from an H.264 file on disk to the chosen
output file: decode thread → inference → encode thread, audio copied, file renamed at the end.
The ratio says how much of the model's speed survives decoding and encoding; the goal is ≥ 0.90.

The clip is synthetic (a moving ellipse over a textured background, AAC tone), generated on the
fly. Weights: the reference random checkpoint when ../shared is present (same cost as trained
weights: sampling mode always refines the same number of patches), else the built-in default.
Method: one warm-up batch, then ``--repeat`` runs of each, interleaved so both see the same load
from other processes; medians of wall time and of process CPU time are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

SIZES = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920)}
OUTPUTS = {
    "comp-mp4": "comp={dir}/out.mp4",
    "rgba-mov": "rgba={dir}/out.mov",
    "alpha-mp4": "alpha={dir}/out.mp4",
    "rgba-webm": "rgba={dir}/out.webm",
    "png": "rgba={dir}/frames",
}


def synthetic_clip(path: Path, size: tuple[int, int], frames: int, rate: int = 30) -> np.ndarray:
    """Write an H.264 + AAC clip of a moving ellipse over texture; return the plate (uint8 H×W×3)."""
    h, w = size
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    plate = np.stack([x / w, y / h, 0.5 + 0.25 * np.sin(x / 17) * np.cos(y / 23)], axis=2) * 200 + 20
    plate = np.clip(plate + rng.normal(0, 6, plate.shape), 0, 255).astype(np.uint8)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        audio = out.add_stream("aac", rate=48000, layout="mono")
        for i in range(frames):
            cx, cy = w * (0.3 + 0.4 * i / max(1, frames - 1)), h * 0.55
            inside = ((x - cx) / (0.12 * w)) ** 2 + ((y - cy) / (0.35 * h)) ** 2 < 1
            frame = plate.copy()
            frame[inside] = (200, 90, 60)
            frame = np.clip(frame + rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = i
            for packet in video.encode(vf):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        samples = int(48000 * frames / rate)
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(tone, format="flt", layout="mono")
        af.sample_rate, af.pts, af.time_base = 48000, 0, Fraction(1, 48000)
        for packet in [*audio.encode(af), *audio.encode()]:
            out.mux(packet)
    return plate


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def model_only_runner(matter, clip: Path, plate: np.ndarray, batch: int):
    """A callable running the model over all frames of ``clip``, pre-decoded in memory."""
    from cleanplate.io.video_reader import VideoReader
    from cleanplate.pipeline.render import to_device

    with VideoReader(clip) as reader:
        frames = torch.from_numpy(np.stack([f.image for f in reader]))
    bgr = to_device(torch.from_numpy(plate)[None], matter.device)

    def run(images: torch.Tensor = frames) -> int:
        for i in range(0, len(images), batch):
            chunk = to_device(images[i : i + batch], matter.device)  # the pipeline's own conversion
            alpha = matter.matte_tensor(chunk, bgr.expand(len(chunk), -1, -1, -1))[0]
            if alpha.is_cuda:
                torch.cuda.synchronize()
        return len(images)

    run(frames[:batch])  # warm-up
    return run


def end_to_end_runner(matter, clip: Path, plate: np.ndarray, output: str, batch: int, workdir: Path):
    """A callable running ``process_video`` from ``clip`` to ``output`` (overwriting it)."""
    from cleanplate.io.formats import parse_output
    from cleanplate.pipeline import VideoOptions, process_video

    spec = parse_output(OUTPUTS[output].format(dir=workdir))

    def run() -> int:
        options = VideoOptions(batch_size=batch, force=True, progress=False)
        return process_video(matter, clip, [spec], plate, options=options).frames

    return run


class _FreeModel:
    """A model that costs nothing: what is left of an end-to-end run is the pipeline's own work."""

    device = torch.device("cpu")

    def matte_tensor(self, src: torch.Tensor, bgr: torch.Tensor):
        alpha = torch.zeros_like(src[:, :1])
        return alpha, src, alpha, alpha


def pipeline_cpu(clip: Path, plate: np.ndarray, output: str, batch: int, workdir: Path) -> float:
    """CPU seconds per frame of decode + conversions + compositing + encoding + audio, no model."""
    run = end_to_end_runner(_FreeModel(), clip, plate, output, batch, workdir)
    cpu = time.process_time()
    frames = run()
    return (time.process_time() - cpu) / frames


def measure(model_run, e2e_run, frames: int, repeat: int) -> dict[str, float]:
    """Interleave model-only and end-to-end runs (so both see the same machine load); medians."""
    walls: dict[str, list[float]] = {"model": [], "e2e": []}
    cpus: dict[str, list[float]] = {"model": [], "e2e": []}
    for _ in range(repeat):
        for key, fn in (("model", model_run), ("e2e", e2e_run)):
            wall, cpu = _timed(fn)
            walls[key].append(wall)
            cpus[key].append(cpu)
    med = {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in walls}
    return {
        "model_fps": frames / med["model"][0],
        "e2e_fps": frames / med["e2e"][0],
        "model_cpu": med["model"][1] / frames,
        "e2e_cpu": med["e2e"][1] / frames,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=8, help="frames per clip [8]")
    parser.add_argument("--sizes", default="720p,1080p", help=f"comma list of {', '.join(SIZES)} [720p,1080p]")
    parser.add_argument("--output", choices=list(OUTPUTS), default="comp-mp4", help="end-to-end output [comp-mp4]")
    parser.add_argument("--batch-size", type=int, default=None, help="[1 on CPU, 4 on CUDA]")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved timed runs of each (median) [3]")
    parser.add_argument("--model", default=None, help="checkpoint or built-in name [reference weights]")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads [torch default]")
    args = parser.parse_args(argv)

    from tests.shared_paths import REFERENCE

    import cleanplate

    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model
    if model is None:
        ref = REFERENCE / "fixtures" / "mobilenetv2_seed7.pth"
        model = str(ref) if ref.exists() else "default"
    matter = cleanplate.load(model, device=args.device)
    batch = args.batch_size or (4 if matter.device.type == "cuda" else 1)
    device = torch.cuda.get_device_name(matter.device) if matter.device.type == "cuda" else "CPU"
    print(
        f"model {Path(model).name}, device {device}, torch threads {torch.get_num_threads()}, batch {batch}, "
        f"{args.frames} frames, output {args.output}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name in args.sizes.split(","):
            size = SIZES[name.strip()]
            clip = workdir / f"clip_{name}.mp4"
            plate = synthetic_clip(clip, size, args.frames)
            model_run = model_only_runner(matter, clip, plate, batch)
            e2e_run = end_to_end_runner(matter, clip, plate, args.output, batch, workdir)
            r = measure(model_run, e2e_run, args.frames, args.repeat)
            r["pipe_cpu"] = pipeline_cpu(clip, plate, args.output, batch, workdir)
            rows.append((name, r))
            print(
                f"  {name}: model-only {r['model_fps']:.2f} fps ({r['model_cpu']:.2f} CPU-s/frame), "
                f"end-to-end {r['e2e_fps']:.2f} fps ({r['e2e_cpu']:.2f} CPU-s/frame)",
                flush=True,
            )
    print()
    print(
        "| size | model-only fps | end-to-end fps | ratio (wall) | CPU-s/frame model / e2e | ratio (CPU) "
        "| pipeline alone, CPU-ms/frame | model / (model + pipeline) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        bound = r["model_cpu"] / (r["model_cpu"] + r["pipe_cpu"])
        print(
            f"| {name} | {r['model_fps']:.2f} | {r['e2e_fps']:.2f} | {r['e2e_fps'] / r['model_fps']:.2f} | "
            f"{r['model_cpu']:.2f} / {r['e2e_cpu']:.2f} | {r['model_cpu'] / r['e2e_cpu']:.2f} | "
            f"{1000 * r['pipe_cpu']:.0f} | {bound:.2f} |"
        )
    print(
        "\nratio (wall): end-to-end fps / model-only fps. ratio (CPU): model CPU time per frame / end-to-end CPU "
        "time per frame; on a CPU-bound machine that is the fps ratio too, and it is far less disturbed by other "
        "processes sharing the cores. pipeline alone: the same end-to-end run with a model that costs nothing "
        "(decode, conversions, compositing, encoding, audio); model / (model + pipeline) is the ratio a fully "
        "CPU-bound machine would reach, the floor when nothing overlaps."
    )


if __name__ == "__main__":
    main()
