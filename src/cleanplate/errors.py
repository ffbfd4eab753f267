"""Typed errors. The CLI prints a CleanplateError as one line and exits non-zero.

Each subclass also derives from the built-in exception a Python user would expect, so
``except ValueError`` keeps working for API users.
"""


class CleanplateError(Exception):
    """A user-facing problem: bad input, bad option, unreadable or unwritable file."""


class InputError(CleanplateError, ValueError):
    """An input image, video, plate or option value is unusable."""


class PlateMismatchError(InputError):
    """The plate cannot be matched to the frame (other aspect ratio, alignment impossible)."""


class CheckpointError(CleanplateError, ValueError):
    """A checkpoint file is missing, corrupt, or of another architecture."""


class OutputError(CleanplateError, OSError):
    """An output cannot be written: exists without --force, unwritable folder, full disk."""


class MissingDependencyError(CleanplateError, ImportError):
    """An optional dependency (onnxruntime, pyvirtualcam, ...) is not installed."""


def reason(exc: BaseException) -> str:
    """The first line of what went wrong (``strerror``, the message, or the type), for one-line errors."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]
