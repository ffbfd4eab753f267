"""Sample frame/plate pairs shipped with cleanplate (licenses in this folder's README.md and LICENSE)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SAMPLES = ("carpark", "vtest")


def sample_pair(name: str = "carpark") -> tuple[Path, Path]:
    """(frame path, plate path) of a bundled sample: 'carpark' (1280x864) or 'vtest' (768x576)."""
    from ..errors import InputError

    if name not in SAMPLES:
        raise InputError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLES)}")
    return HERE / f"{name}_src.jpg", HERE / f"{name}_plate.jpg"
