"""Inference *speed* (``cleanplate bench``), measured honestly: every variant against the eager model, interleaved.

Matting *quality* is measured elsewhere: :mod:`cleanplate.eval`.

Variants per (backbone, size):

- ``eager``: MattingRefine as written (the parity-tested path, the original BGMv2 forward pass);
- ``torch``: :func:`cleanplate.models.fast.optimize` (BN folded, channels_last, window-only refiner);
- ``onnxruntime``: the exported static-shape graph in onnxruntime (CPU, or CUDA when lent a GPU).

Each repeat runs every variant once, in turn, so a background load slows all of them alike; we
report the median and the minimum over repeats after warm-up, the ratio of medians against
``eager``, and how far each variant's outputs are from ``eager`` on the same frame.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import InputError
from .export.common import Comparison, compare_outputs, example_pair
from .models.matting import MattingRefine
from .options import BACKBONES

SIZES = {"360p": (360, 640), "540p": (540, 960), "720p": (720, 1280), "1080p": (1080, 1920), "4k": (2160, 3840)}
VARIANTS = ("eager", "torch", "onnxruntime")


def parse_size(text: str) -> tuple[str, tuple[int, int]]:
    """'1080p', '4k' or 'HxW' (H and W divisible by 4) → (label, (H, W))."""
    key = text.strip().lower()
    if key in SIZES:
        return key, SIZES[key]
    try:
        h, w = (int(v) for v in key.split("x"))
    except ValueError:
        raise InputError(f"unknown size {text!r}; use {', '.join(SIZES)} or HxW") from None
    if h <= 0 or w <= 0 or h % 4 or w % 4:
        raise InputError(f"size {text!r}: height and width must be positive multiples of 4")
    return key, (h, w)


def bench_model(backbone: str, **refine: object) -> MattingRefine:
    """Random weights for timing only (PyTorch's default init), with the error head biased to 0.5.

    With default init the predicted error is ~0 everywhere, so the original would drop every patch
    (zero error) and refine nothing; the bias gives the refiner its usual ``sample_pixels`` of work.
    """
    torch.manual_seed(0)
    model = MattingRefine(backbone, **refine).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        model.decoder.conv4.bias[4] = 0.5
    return model


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Timing:
    backbone: str
    size: str
    variant: str
    times: list[float] = field(default_factory=list)  # seconds
    check: Comparison | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.times) * 1000


def _runners(
    model: nn.Module,
    variants: Sequence[str],
    ort_threads: int | None,
    precision: str = "fp32",
    compile: bool = False,  # noqa: A002
) -> dict[str, Callable]:
    runners: dict[str, Callable] = {}
    for name in variants:
        if name == "eager":
            runners[name] = model
        elif name == "torch":
            from .models.fast import optimize

            label = name + ("" if precision == "fp32" else f"-{precision}") + ("+compile" if compile else "")
            runners[label] = optimize(model, precision=precision, compile=compile)
        elif name == "onnxruntime":
            from .export.runtime import OrtMatting

            device = next(model.parameters()).device
            runners[name] = OrtMatting.from_model(model, threads=ort_threads, device=device)
        else:
            raise InputError(f"unknown backend {name!r}; choose from {', '.join(VARIANTS)}")
    return runners


def run_benchmark(
    model: nn.Module,
    size: tuple[int, int],
    *,
    label: str = "",
    variants: Sequence[str] = VARIANTS,
    repeat: int = 5,
    warmup: int = 1,
    batch: int = 1,
    precision: str = "fp32",
    compile: bool = False,  # noqa: A002
    device: str | torch.device = "cpu",
    progress: Callable[[str], None] | None = None,
) -> list[Timing]:
    """Time ``variants`` of ``model`` on one (batch, 3, H, W) frame pair, interleaved; eager always included.

    ``precision`` and ``compile`` apply to the ``torch`` variant (then named e.g. ``torch-bf16+compile``);
    the first (untimed) call includes exporting (onnxruntime) or compiling. On CUDA the frames are
    on the device and every timed call ends with ``torch.cuda.synchronize()``.
    """
    if repeat < 1 or warmup < 0:
        raise InputError("repeat must be >= 1 and warmup >= 0")
    variants = ["eager", *[v for v in variants if v != "eager"]]
    device = torch.device(device)
    model = model.to(device)
    src, bgr = (t.to(device) for t in example_pair(batch, *size, seed=0))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    runners = _runners(model, variants, torch.get_num_threads(), precision, compile)
    backbone = getattr(model, "backbone_name", "?")
    results = {v: Timing(backbone, label or f"{size[0]}x{size[1]}", v) for v in runners}
    with torch.inference_mode():
        outputs = {}
        for name, run in runners.items():  # first call: export / lazy init, and the outputs compared
            start = time.perf_counter()
            outputs[name] = run(src, bgr)
            if progress:
                seconds = time.perf_counter() - start
                progress(f"{backbone} {label}: first call of {name} (with export/compile): {seconds:.1f} s")
            for _ in range(max(warmup - 1, 0)):
                run(src, bgr)
        names = ("pha", "fgr", "pha_sm", "fgr_sm", "err_sm", "ref_sm")[: len(outputs["eager"])]
        outputs = {k: tuple(t.cpu() for t in v) for k, v in outputs.items()}
        for name in list(runners)[1:]:
            results[name].check = compare_outputs(names, outputs[name], outputs["eager"])
        del outputs
        for i in range(repeat):
            if progress:
                progress(f"{backbone} {label}: repeat {i + 1}/{repeat}")
            for name, run in runners.items():
                sync()
                start = time.perf_counter()
                run(src, bgr)
                sync()
                results[name].times.append(time.perf_counter() - start)
    return list(results.values())


def format_table(timings: Sequence[Timing]) -> str:
    """Markdown table: ms/frame (median, min), speed-up over eager (ratio of medians), max abs diff."""
    eager = {(t.backbone, t.size): t.median_ms for t in timings if t.variant == "eager"}
    lines = [
        "| backbone | size | backend | median ms | min ms | vs eager | max abs diff vs eager |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for t in timings:
        ratio = eager[(t.backbone, t.size)] / t.median_ms
        if t.check is None:
            diff = "(reference)"
        else:
            diff = f"{t.check.worst:.1e}"
            if t.check.refined_cells:
                diff += f" ({t.check.flipped_cells} of {t.check.refined_cells} patches differ)"
        lines.append(
            f"| {t.backbone} | {t.size} | {t.variant} | {t.median_ms:.1f} | {t.min_ms:.1f} | {ratio:.2f}x | {diff} |"
        )
    return "\n".join(lines)


def machine_line() -> str:
    """What the numbers were measured on (for the report)."""
    import os
    import platform

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):  # noqa: SIM115
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ""
    with contextlib.suppress(OSError, AttributeError):
        load = f", load average {os.getloadavg()[0]:.1f}"
    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads{load}"


__all__ = ["BACKBONES", "SIZES", "VARIANTS", "Timing", "bench_model", "format_table", "parse_size", "run_benchmark"]
