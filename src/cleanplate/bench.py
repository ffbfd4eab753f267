"""Moved to :mod:`cleanplate.speed` (inference speed; quality is :mod:`cleanplate.eval`).

This alias keeps old imports working.
"""

from .speed import SIZES, VARIANTS, Timing, bench_model, format_table, machine_line, parse_size, run_benchmark, threads

__all__ = [
    "SIZES",
    "VARIANTS",
    "Timing",
    "bench_model",
    "format_table",
    "machine_line",
    "parse_size",
    "run_benchmark",
    "threads",
]
