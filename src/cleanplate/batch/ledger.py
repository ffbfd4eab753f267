"""The batch ledger: one SQLite file in OUTDIR that records what is done, so a run can resume.

Why SQLite (WAL): every state change is one small durable transaction, a crash or Ctrl-C leaves the
file consistent, and a second process (a progress monitor, a test) can read it while a run
writes. Only the driver process writes; workers return their results to it. An output's checksum
is recorded when the item finishes, so a re-run skips an item only if its files are still what
was written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .adapter import OutputError

LEDGER_DIR = ".cleanplate"
LEDGER_NAME = "ledger.sqlite"

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    media TEXT NOT NULL,
    input TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    planned TEXT NOT NULL,          -- JSON list of the output paths this item owns
    outputs TEXT,                   -- JSON list of {path, sha256, size, mtime_ns} once done
    started REAL,
    finished REAL,
    seconds REAL
);
CREATE TABLE IF NOT EXISTS segments (
    item_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    idx INTEGER NOT NULL,
    bounds TEXT NOT NULL,           -- JSON [start, end] seconds: a segment is reused only for the same cut
    frames INTEGER NOT NULL,
    outputs TEXT NOT NULL,
    PRIMARY KEY (item_id, idx)
);
"""


@dataclass
class Record:
    id: str
    fingerprint: str
    media: str
    input: str
    state: str
    attempts: int
    error: str | None
    planned: list[str]
    outputs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float | None = None


def file_digest(path: Path) -> str:
    """sha256 of a file, or of a PNG folder (its file names and their digests, sorted)."""
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                h.update(f"{p.name}:{file_digest(p)}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stat(path: Path) -> tuple[int, int]:
    """(size, mtime_ns) of a file, or (total size, latest mtime) of a folder's files."""
    if path.is_dir():
        stats = [p.stat() for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
        return sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def describe_output(path: Path) -> dict[str, Any]:
    """What the ledger keeps about a finished output."""
    size, mtime = _stat(path)
    return {"path": str(path), "sha256": file_digest(path), "size": size, "mtime_ns": mtime}


def check_output(record: dict[str, Any], *, full: bool = False) -> str | None:
    """None when the output is as written; else 'missing' or 'changed'.

    Quick mode trusts an unchanged size and mtime; anything else (or ``full``) compares checksums.
    """
    path = Path(record["path"])
    if not path.exists():
        return "missing"
    try:
        size, mtime = _stat(path)
        if not full and size == record["size"] and mtime == record["mtime_ns"]:
            return None
        return None if file_digest(path) == record["sha256"] else "changed"
    except OSError:
        return "missing"


class Ledger:
    """Item and segment states in ``OUTDIR/.cleanplate/ledger.sqlite``."""

    def __init__(self, outdir: Path) -> None:
        self.dir = outdir / LEDGER_DIR
        self.path = self.dir / LEDGER_NAME
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise OutputError(f"cannot open the batch ledger {self.path}: {exc}") from None
        self._lock_file: Any = None

    # -- lifetime ---------------------------------------------------------------------------------
    def lock(self) -> None:
        """One run per OUTDIR at a time: a second one would redo and race the first's items."""
        import fcntl

        f = open(self.dir / "lock", "w")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise OutputError(f"another cleanplate batch is running on {self.dir.parent}") from None
        self._lock_file = f

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- items ------------------------------------------------------------------------------------
    def records(self) -> dict[str, Record]:
        rows = self._db.execute(
            "SELECT id, fingerprint, media, input, state, attempts, error, planned, outputs, seconds FROM items"
        ).fetchall()
        return {r[0]: _record(r) for r in rows}

    def get(self, item_id: str) -> Record | None:
        row = self._db.execute(
            "SELECT id, fingerprint, media, input, state, attempts, error, planned, outputs, seconds FROM items "
            "WHERE id = ?",
            (item_id,),
        ).fetchone()
        return None if row is None else _record(row)

    def register(self, entries: list[tuple[str, str, str, str, list[str]]]) -> None:
        """Record items about to run (id, fingerprint, media, input, planned outputs) as pending.

        Done before any work so the outputs they will write are known to be the batch's own (a
        re-run may replace them; anything else in OUTDIR needs ``--force``).
        """
        with self._tx() as db:
            for item_id, fp, media, source, planned in entries:
                db.execute(
                    "INSERT INTO items (id, fingerprint, media, input, state, planned) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET fingerprint = excluded.fingerprint, media = excluded.media, "
                    "input = excluded.input, state = excluded.state, "
                    "planned = excluded.planned",
                    (item_id, fp, media, source, PENDING, json.dumps(planned)),
                )

    def start(self, item_ids: list[str]) -> None:
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "UPDATE items SET state = ?, attempts = attempts + 1, started = ?, error = NULL WHERE id = ?",
                [(RUNNING, now, i) for i in item_ids],
            )

    def finish(self, item_id: str, outputs: list[dict[str, Any]], seconds: float) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE items SET state = ?, outputs = ?, error = NULL, finished = ?, seconds = ? WHERE id = ?",
                (DONE, json.dumps(outputs), time.time(), seconds, item_id),
            )
            db.execute("DELETE FROM segments WHERE item_id = ?", (item_id,))

    def fail(self, item_id: str, error: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE items SET state = ?, error = ?, finished = ? WHERE id = ?",
                (FAILED, error, time.time(), item_id),
            )

    def release(self, item_ids: list[str]) -> None:
        """Interrupted (Ctrl-C) before finishing: back to pending, the attempt not counted."""
        with self._tx() as db:
            db.executemany(
                "UPDATE items SET state = ?, attempts = MAX(0, attempts - 1) WHERE id = ? AND state = ?",
                [(PENDING, i, RUNNING) for i in item_ids],
            )

    def recover_stale(self) -> list[str]:
        """Items left 'running' by a run that died without cleaning up (killed, power cut): failed."""
        with self._tx() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM items WHERE state = ?", (RUNNING,))]
            db.execute(
                "UPDATE items SET state = ?, error = 'the run that processed it was killed' WHERE state = ?",
                (FAILED, RUNNING),
            )
        return ids

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())

    # -- video segments ---------------------------------------------------------------------------
    def segments(self, item_id: str, fingerprint: str) -> dict[int, tuple[list[float | None], int, list[dict]]]:
        rows = self._db.execute(
            "SELECT idx, bounds, frames, outputs FROM segments WHERE item_id = ? AND fingerprint = ?",
            (item_id, fingerprint),
        ).fetchall()
        return {r[0]: (json.loads(r[1]), r[2], json.loads(r[3])) for r in rows}

    def segment_done(
        self, item_id: str, fingerprint: str, idx: int, bounds: list[float | None], frames: int, outputs: list[dict]
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO segments (item_id, fingerprint, idx, bounds, frames, outputs) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (item_id, fingerprint, idx, json.dumps(bounds), frames, json.dumps(outputs)),
            )


def _record(row: tuple) -> Record:
    return Record(
        id=row[0],
        fingerprint=row[1],
        media=row[2],
        input=row[3],
        state=row[4],
        attempts=row[5],
        error=row[6],
        planned=json.loads(row[7]),
        outputs=json.loads(row[8]) if row[8] else [],
        seconds=row[9],
    )


def ledger_exists(outdir: Path) -> bool:
    return (outdir / LEDGER_DIR / LEDGER_NAME).exists()


__all__ = [
    "DONE",
    "FAILED",
    "PENDING",
    "RUNNING",
    "Ledger",
    "Record",
    "check_output",
    "describe_output",
    "file_digest",
    "ledger_exists",
]
