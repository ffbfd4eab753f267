"""Does reduced precision keep the matting quality? fp32 eager vs fp32 fast vs bf16 vs int8, on the eval set.

Runs every variant on the held-out synthetic composites of ``cleanplate eval`` (ground-truth
subjects over held-out backgrounds, plates at the given perturbation levels) and prints, per
variant: the mean metrics (SAD, MSE, MAD, Grad, Conn, foreground MSE), the max / mean absolute
alpha difference to the fp32 eager model, and the mean seconds per case.

    python benchmarks/precision.py --model runs/default/last.pt \\
        --gt-dir ../shared/data/train/gt --backgrounds ../shared/data/train/backgrounds

Variants: ``eager`` (the parity-tested model), ``fast`` (cleanplate.models.fast, fp32), ``bf16``
(fast path, convolutions in bfloat16 under autocast), ``ort`` (exported ONNX in onnxruntime, fp32)
and ``int8`` (the same ONNX graph with onnxruntime dynamic int8 quantisation of weights and
activations, ``quantize_dynamic``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from cleanplate.api import Matter
from cleanplate.eval.benchmark import evaluate, mean_metrics, predictor, synthetic_cases
from cleanplate.models.checkpoint import load_checkpoint
from cleanplate.models.fast import optimize

VARIANTS = ("eager", "fast", "bf16", "ort", "int8")


def build(variant: str, model: torch.nn.Module, scale: float, workdir: Path) -> Matter:
    cpu = torch.device("cpu")
    if variant == "eager":
        return Matter(model, device=cpu, backbone_scale=scale)
    if variant in ("fast", "bf16"):
        fast = optimize(model, precision="bf16" if variant == "bf16" else "fp32")
        return Matter(fast, device=cpu, backbone_scale=scale)
    from cleanplate.export.onnx import export_onnx
    from cleanplate.export.runtime import OrtMatting

    model.backbone_scale = scale
    path = workdir / "model.onnx"
    if not path.exists():
        export_onnx(model, path, check=False)
    if variant == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = workdir / "model.int8.onnx"
        if not quantized.exists():
            quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
        path = quantized
    return Matter(None, device=cpu, backbone_scale=scale, runner=OrtMatting.from_file(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="MattingRefine checkpoint (trained weights)")
    parser.add_argument("--gt-dir", default="../shared/data/train/gt")
    parser.add_argument("--backgrounds", default="../shared/data/train/backgrounds")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--levels", default="low,high")
    parser.add_argument("--max-size", type=int, default=1024)
    parser.add_argument("--backbone-scale", type=float, default=0.25)
    parser.add_argument("--limit", type=int, default=0, help="only the first N cases (0: all)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, _ = load_checkpoint(args.model)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        matters = {v: build(v, model, args.backbone_scale, Path(tmp)) for v in variants}
        preds = {v: predictor(m) for v, m in matters.items()}
        cases = synthetic_cases(
            args.gt_dir, args.backgrounds, levels=args.levels.split(","), max_size=args.max_size, split="holdout"
        )
        diffs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}

        def on_case(case, result, predictions) -> None:
            ref = predictions[variants[0]][0]
            for v in variants:
                d = np.abs(predictions[v][0] - ref)
                diffs[v].append((float(d.max()), float(d.mean())))
            print(f"{len(diffs[variants[0]]):3d} {case.name} ({case.level})", file=sys.stderr)

        if args.limit:
            import itertools

            cases = itertools.islice(cases, args.limit)
        results = evaluate(preds, cases, on_case=on_case)
    names = list(mean_metrics(results, variants[0]))
    print(
        f"{len(results)} cases (held-out subjects and backgrounds, levels {args.levels}, long side <= {args.max_size})"
    )
    print("| variant | " + " | ".join(names) + f" | max abs dα vs {variants[0]} | mean abs dα | s/case |")
    print("|---|" + "---:|" * (len(names) + 3))
    for v in variants:
        m = mean_metrics(results, v)
        dmax = max(d[0] for d in diffs[v])
        dmean = float(np.mean([d[1] for d in diffs[v]]))
        secs = float(np.mean([r.seconds[v] for r in results]))
        cells = " | ".join(f"{m[k]:.4g}" for k in names)
        print(f"| {v} | {cells} | {dmax:.2e} | {dmean:.2e} | {secs:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
