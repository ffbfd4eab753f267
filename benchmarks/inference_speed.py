"""ms/frame of every backbone and backend against the straightforward eager model, in one run.

    python benchmarks/inference_speed.py                       # all backbones, 720p/1080p/4k, torch + onnxruntime
    python benchmarks/inference_speed.py --backbones mobilenetv2 --sizes 1080p --repeat 9 --threads 2
    python benchmarks/inference_speed.py --model runs/default/last.pt --precision bf16

Each repeat runs eager, then each backend, on the same frame pair (a plausible synthetic scene),
so background load on the machine slows all variants alike; the table reports the median and
minimum over repeats (after one warm-up run), the ratio of medians against eager, and the largest
output difference against eager (pha/fgr over patches refined the same way; how many of the
refined patches differ is shown too: near-ties at the k-th error can flip, as they do between 1
and 2 threads in the original). Random weights unless --model is given (PyTorch's init with the
error head biased so the refiner has its usual sample_pixels of work). Backbone scale 1/4, 1/8 for
4K (cleanplate.load's choice). Writes the markdown table to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import sys

import torch

from cleanplate.models.checkpoint import load_checkpoint
from cleanplate.options import auto_backbone_scale
from cleanplate.speed import bench_model, format_table, machine_line, parse_size, run_benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenetv2,resnet50,resnet101")
    parser.add_argument("--sizes", default="720p,1080p,4k")
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--sample-pixels", type=int, default=80_000)
    parser.add_argument("--model", default=None, help="MattingRefine checkpoint (else random weights)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="of the torch backend")
    parser.add_argument("--compile", action="store_true", help="torch.compile the torch backend's base network")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    refine = {"refine_sample_pixels": args.sample_pixels}
    if args.model:
        models = [load_checkpoint(args.model, **refine)[0]]
    else:
        models = [bench_model(b.strip(), **refine) for b in args.backbones.split(",") if b.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"# {machine_line()}", file=sys.stderr)
    timings = []
    for model in models:
        for label, (h, w) in (parse_size(s) for s in args.sizes.split(",")):
            model.backbone_scale = auto_backbone_scale(h, w)
            timings += run_benchmark(
                model,
                (h, w),
                label=label,
                variants=backends,
                repeat=args.repeat,
                warmup=args.warmup,
                precision=args.precision,
                compile=args.compile,
                progress=lambda msg: print(msg, file=sys.stderr),
            )
            print(format_table([t for t in timings if t.size == label and t.backbone == timings[-1].backbone]))
            sys.stdout.flush()
    print("\n" + format_table(timings))
    print(f"\n{machine_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
