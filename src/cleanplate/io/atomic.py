"""Atomic output files: write to a hidden temp file beside the target, then rename.

A crash, Ctrl-C or full disk never leaves a half-written file under the final name, and an
existing file is only replaced when the caller passed ``force``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
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


TEMP_TAG = ".tmp-"


def temp_path_for(final: Path) -> Path:
    """A unique hidden name in the same folder that keeps the suffix (writers infer formats from it).

    ``.NAME.tmp-PID-RANDOM.EXT``: the writing process's id lets a later run tell a temp file left
    by a killed run (:func:`stale_temp_files`) from one another run is still writing.
    """
    return final.with_name(f".{final.stem}{TEMP_TAG}{os.getpid()}-{secrets.token_hex(4)}{final.suffix}")


_TEMP_RE = re.compile(r"^\.(?P<stem>.+)\.tmp-(?:(?P<pid>\d+)-)?[0-9a-f]{8}(?P<suffix>\.[^.]*)?$")


def final_path_for(path: str | os.PathLike) -> Path:
    """The final name a temp file of :func:`temp_path_for` stands for (the path itself for any other)."""
    p = Path(path)
    m = _TEMP_RE.match(p.name)
    return p.with_name(f"{m['stem']}{m['suffix'] or ''}") if m else p


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return False
    return True


def stale_temp_files(final: str | os.PathLike) -> list[Path]:
    """Temp files of ``final`` left behind by a run that was killed (SIGKILL, power loss).

    A temp file counts as stale when the process that wrote it is gone; one without a process id
    (written by an older cleanplate) counts as stale when it is more than an hour old.
    """
    target = Path(final)
    folder = target.parent
    if not folder.is_dir():
        return []
    stale = []
    prefix = f".{target.stem}{TEMP_TAG}"
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return []
    for p in candidates:
        m = _TEMP_RE.match(p.name)
        if m is None or final_path_for(p) != target or not p.is_file():
            continue
        if m["pid"] is not None:
            if not _alive(int(m["pid"])):
                stale.append(p)
        else:
            with contextlib.suppress(OSError):
                if time.time() - p.stat().st_mtime > 3600:
                    stale.append(p)
    return sorted(stale)


def remove_stale_temp_files(finals: Iterable[str | os.PathLike]) -> tuple[int, int]:
    """Delete the stale temp files (:func:`stale_temp_files`) of each path; (files removed, bytes freed)."""
    count = size = 0
    for final in finals:
        for p in stale_temp_files(final):
            with contextlib.suppress(OSError):
                n = p.stat().st_size
                p.unlink()
                count, size = count + 1, size + n
    return count, size


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_error(final: str | os.PathLike, exc: BaseException | None = None) -> OutputError:
    """The one-line error for a full disk, naming the output (never its temp file)."""
    error = OutputError(f"cannot write {final_path_for(final)}: no space left on device")
    error.errno = errno.ENOSPC
    return error


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
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if is_disk_full(exc) and not isinstance(exc, OutputError):
            raise disk_full_error(target) from exc
        raise
