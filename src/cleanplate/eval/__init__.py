"""Evaluation: matting metrics (alphamatting.com definitions), a deterministic benchmark, reports.

``metrics`` is pure numpy and cheap to import; ``benchmark`` and ``report`` pull in the models.
"""

from .metrics import (
    METRICS,
    connectivity_error,
    foreground_mse,
    gradient_error,
    mad,
    mse,
    sad,
    unknown_region,
)

__all__ = [
    "METRICS",
    "connectivity_error",
    "foreground_mse",
    "gradient_error",
    "mad",
    "mse",
    "sad",
    "unknown_region",
]
