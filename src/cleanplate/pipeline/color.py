"""Moved to :mod:`cleanplate.plate.color`; this alias keeps old imports working."""

from ..plate.color import ColorMatcher, channel_gains

__all__ = ["ColorMatcher", "channel_gains"]
