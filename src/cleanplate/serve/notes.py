"""Warnings the library raised while serving one request, kept for that request's answer.

The CLI prints a plate's warnings (``warning: the aligned plate leaves 2.3 % of the frame
uncovered ...``); a server client would otherwise never see them, only the server's log.
``warnings.catch_warnings`` cannot collect them here: it swaps process-wide state, so two
requests on two worker threads would take each other's warnings (or lose them). Instead one
``showwarning`` hook hands each warning to the collector of the request that raised it
(:func:`collected`, a context variable: per thread, and carried into the video pipeline's
worker threads, which run in their creator's context); warnings raised outside a collector go
where they went before.
"""

from __future__ import annotations

import contextvars
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .adapter import plate_warnings

MAX_NOTES = 4  # a video with --align can warn once per frame: the distinct first few are enough
MAX_CHARS = 300

_notes: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("cleanplate_notes", default=None)
_install_lock = threading.Lock()
_previous: Any = None


def _show(
    message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    notes = _notes.get()
    if notes is not None and issubclass(category, plate_warnings()):
        add(notes, str(message))
        return
    _previous(message, category, filename, lineno, file, line)


def add(notes: list[str], text: str) -> None:
    """Append ``text``'s first line (ASCII, for an HTTP header; bounded) unless already there."""
    first = (text.strip().splitlines() or [""])[0]
    clean = first.encode("ascii", "replace").decode("ascii")[:MAX_CHARS]
    if clean and clean not in notes and len(notes) < MAX_NOTES:
        notes.append(clean)


def _install() -> None:
    """Put the hook in front of whatever ``showwarning`` is now (a test runner may swap it per test).

    The filters go in with it, not on every request: changing them resets every module's record of
    warnings already shown (``catch_warnings``, which swaps the hook out, restores both together).
    """
    global _previous
    with _install_lock:
        if warnings.showwarning is _show:
            return
        _previous = warnings.showwarning
        warnings.showwarning = _show
        for category in plate_warnings():
            # every occurrence, not once per code location: each request must see its own
            warnings.filterwarnings("always", category=category)


@contextmanager
def collected() -> Iterator[list[str]]:
    """The plate warnings raised inside the ``with`` block (this thread and the pipeline workers
    it starts), as one-line texts."""
    _install()
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)
