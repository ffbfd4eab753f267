"""Atomic output files: write to a hidden temp file beside the target, then rename.

A crash, Ctrl-C or full disk never leaves a half-written file under the final name, and an
existing file is only replaced when the caller passed ``force``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError


def check_output(path: str | os.PathLike, force: bool = False) -> Path:
    """Raise :class:`OutputError` unless ``path`` could be written now; return it as a Path.

    Called before long work starts so a run never stops half-way because an output exists.
    """
    final = Path(path)
    if final.is_dir():
        raise OutputError(f"output {final} is a folder, not a file")
    if final.exists() and not force:
        raise OutputError(f"output {final} already exists (use --force to overwrite)")
    parent = final.parent
    if not parent.exists():
        # A regular file somewhere up the path makes the folder impossible to create.
        blocker = next((p for p in (parent, *parent.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise OutputError(f"cannot write {final}: {blocker} is a file, not a folder")
        raise OutputError(f"output folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"cannot write {final}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {parent} is not writable")
    return final


def check_dir_creatable(path: str | os.PathLike) -> Path:
    """Raise :class:`OutputError` unless ``path`` is a writable folder or could be created as one."""
    folder = Path(path)
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                if p == folder:
                    raise OutputError(f"output folder {folder} is a file, not a folder")
                raise OutputError(f"output folder {folder} cannot be created: {p} is a file")
            if not os.access(p, os.W_OK | os.X_OK):
                raise OutputError(f"output folder {folder} cannot be written ({p} is not writable)")
            return folder
    return folder


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create an output folder (and parents); one-line :class:`OutputError` when impossible."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(f"cannot create output folder {folder}: a file is in the way") from exc
    except NotADirectoryError as exc:
        raise OutputError(f"cannot create output folder {folder}: part of the path is a file") from exc
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable")
    return folder


def temp_path_for(final: Path) -> Path:
    """A unique hidden name in the same folder that keeps the suffix (writers infer formats from it)."""
    return final.with_name(f".{final.stem}.tmp-{secrets.token_hex(4)}{final.suffix}")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``final``, on any failure it is removed.

    >>> with atomic_path("out.png") as tmp:   # doctest: +SKIP
    ...     image.save(tmp, format="PNG")
    """
    target = check_output(final, force)
    tmp = temp_path_for(target)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written for {target}")
        if target.exists() and not force:  # appeared while we were writing
            raise OutputError(f"output {target} already exists (use --force to overwrite)")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
