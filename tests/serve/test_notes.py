"""The per-thread collector of plate warnings (serve/notes.py)."""

from __future__ import annotations

import threading
import warnings

from cleanplate.plate import AlignmentWarning, PlateWarning
from cleanplate.serve.notes import MAX_NOTES, collected


def test_each_thread_gets_only_its_own_warnings() -> None:
    start = threading.Barrier(2)
    got: dict[str, list[str]] = {}

    def request(name: str) -> None:
        with collected() as notes:
            start.wait(timeout=10)
            for _ in range(3):  # the same warning again: once in the notes
                warnings.warn(f"plate of {name} is off", PlateWarning, stacklevel=1)
            start.wait(timeout=10)
        got[name] = notes

    threads = [threading.Thread(target=request, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert got == {"a": ["plate of a is off"], "b": ["plate of b is off"]}


def test_repeated_requests_each_see_the_warning() -> None:
    # the warnings module shows a warning once per code location by default; every request must see it
    for _ in range(2):
        with collected() as notes:
            warnings.warn("alignment failed", AlignmentWarning, stacklevel=1)
        assert notes == ["alignment failed"]


def test_other_warnings_and_warnings_outside_pass_through() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with collected() as notes:
            warnings.warn("not about the plate", DeprecationWarning, stacklevel=1)
        warnings.warn("outside", PlateWarning, stacklevel=1)
    assert notes == []
    assert [str(w.message) for w in seen] == ["not about the plate", "outside"]


def test_notes_are_one_ascii_line_each_and_bounded() -> None:
    with collected() as notes:
        warnings.warn("shifted by 3 px \u2192 use --align\nsecond line", PlateWarning, stacklevel=1)
        for i in range(10):
            warnings.warn(f"note {i}", PlateWarning, stacklevel=1)
    assert notes[0] == "shifted by 3 px ? use --align"
    assert len(notes) == MAX_NOTES
