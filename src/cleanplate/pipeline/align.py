"""Moved to :mod:`cleanplate.plate.track`; this alias keeps old imports working."""

from ..plate.track import AlignStats, PlateAligner

__all__ = ["AlignStats", "PlateAligner"]
