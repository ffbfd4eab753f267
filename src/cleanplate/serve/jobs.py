"""Video jobs: recorded in SQLite, run one at a time on a worker thread, files under the state folder.

The database is the truth about every job, so a restarted server does not forget one: a job
that was queued or running when the previous process died (crash, power loss, SIGKILL) is
reported as ``interrupted`` with a reason, never as running forever or as unknown. Each job owns
one private folder (0700) holding its uploads and its result; the result is written by the
library's atomic writer (temp file + rename), so a result file is always complete. Folders are
removed on DELETE, when the job fails or is interrupted (inputs) and after the time-to-live.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from . import adapter
from .notes import add, collected
from .problems import Problem
from .uploads import remove_tree

log = logging.getLogger("cleanplate.serve")

JobState = Literal["queued", "running", "done", "failed", "interrupted", "expired"]
STATES: tuple[str, ...] = get_args(JobState)
ACTIVE = ("queued", "running")
ID_BYTES = 12
PROGRESS_EVERY_S = 0.25  # progress rows are written at most this often
KEEP_ROWS_S = 7 * 24 * 3600  # an expired job is forgotten a week after its files went

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    expires REAL,
    frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER,
    fps REAL,
    detail TEXT,
    output TEXT NOT NULL,
    format TEXT NOT NULL,
    result TEXT
)
"""


@dataclass
class Job:
    """One row of the jobs table."""

    id: str
    state: str
    created: float
    output: str
    format: str
    started: float | None = None
    finished: float | None = None
    expires: float | None = None
    frames_done: int = 0
    frames_total: int | None = None
    fps: float | None = None
    detail: str | None = None
    result: str | None = None

    def eta_seconds(self) -> float | None:
        if self.state != "running" or not self.fps or self.frames_total is None:
            return None
        return max(0.0, (self.frames_total - self.frames_done) / self.fps)


def new_job_id() -> str:
    return secrets.token_urlsafe(ID_BYTES)


def valid_job_id(text: str) -> bool:
    """Ids are ours (url-safe base64 of 12 random bytes); anything else cannot name a job."""
    return len(text) == 16 and all(c.isalnum() or c in "-_" for c in text)


class JobStore:
    """The jobs table. One connection, guarded by a lock (SQLite serialises writers anyway)."""

    def __init__(self, path: Path, *, ttl: float) -> None:
        self.path = path
        self.ttl = ttl
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
        self.recover()

    def recover(self) -> int:
        """Mark jobs a previous process left queued or running as interrupted; returns how many."""
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state='interrupted', finished=?, expires=?, "
                "detail='the server stopped while the job was ' || state WHERE state IN ('queued', 'running')",
                (now, now + self.ttl),
            )
            return cur.rowcount

    def create(self, job: Job) -> None:
        row = asdict(job)
        with self._lock:
            self._db.execute(
                f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            )

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return Job(**dict(row)) if row is not None else None

    def list(self, state: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs newest first, optionally only those in ``state`` (one of :data:`STATES`)."""
        where, args = ("WHERE state=?", (state,)) if state else ("", ())
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs {where} ORDER BY created DESC, id LIMIT ?", (*args, int(limit))
            ).fetchall()
        return [Job(**dict(r)) for r in rows]

    def update(self, job_id: str, **values: Any) -> None:
        unknown = set(values) - set(Job.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown job fields {unknown}")
        sets = ", ".join(f"{k}=?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {sets} WHERE id=?", (*values.values(), job_id))

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def due(self, now: float) -> list[str]:
        """Finished jobs whose time-to-live is over (files to remove)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE expires IS NOT NULL AND expires < ? AND state NOT IN "
                "('queued', 'running', 'expired')",
                (now,),
            ).fetchall()
        return [r["id"] for r in rows]

    def forget_old(self, now: float) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE state='expired' AND expires < ?", (now - KEEP_ROWS_S,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class VideoRequest:
    """What a job needs to run, decided and checked by the route before the job is queued."""

    source: Path
    plate: Path | None
    plate_is_image: bool
    plate_frames: tuple[int, int | None] | None
    output: str  # rgba | alpha | comp | fgr
    format: str  # webm | mov | mp4
    background: str | Path | None
    align: bool
    smooth: float
    refine: dict[str, Any] = field(default_factory=dict)
    max_frames: int | None = None  # enforced while running when the container did not say its length


@dataclass
class _Control:
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    reason: str = ""  # "cancel" or "shutdown"
    started: bool = False


class VideoJobs:
    """Runs video jobs one after another; bounded: at most ``max_jobs`` queued or running."""

    def __init__(
        self,
        store: JobStore,
        root: Path,
        get_matter: Callable[[dict[str, Any]], Any],
        *,
        max_jobs: int,
        ttl: float,
        decode_plate: Callable[[Path], Any],
    ) -> None:
        self.store, self.root, self.get_matter = store, root, get_matter
        self.max_jobs, self.ttl = max_jobs, ttl
        self.decode_plate = decode_plate
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cleanplate-video")
        self._controls: dict[str, _Control] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def active(self) -> int:
        """Jobs queued or running in this process."""
        return len(self._controls)

    def folder(self, job_id: str) -> Path:
        return self.root / job_id

    def result_path(self, job: Job) -> Path | None:
        return self.folder(job.id) / job.result if job.result else None

    # admission ------------------------------------------------------------------------------
    def reserve(self) -> None:
        """Raise 429 unless another job fits (checked before the upload is even read)."""
        with self._lock:
            if self._closed:
                raise Problem("unavailable", "the server is shutting down")
            if len(self._controls) >= self.max_jobs:
                raise Problem(
                    "busy",
                    f"{len(self._controls)} video jobs are queued or running (the limit); retry later",
                    headers={"Retry-After": "30"},
                )

    def submit(self, job: Job, request: VideoRequest) -> None:
        with self._lock:
            if self._closed:
                raise Problem("unavailable", "the server is shutting down")
            if len(self._controls) >= self.max_jobs:
                raise Problem("busy", "too many video jobs; retry later", headers={"Retry-After": "30"})
            control = self._controls[job.id] = _Control()
        self.store.create(job)
        try:
            self._executor.submit(self._run, job.id, request, control)
        except RuntimeError:
            with self._lock:
                self._controls.pop(job.id, None)
            self.store.update(job.id, state="interrupted", detail="the server is shutting down", finished=time.time())
            raise Problem("unavailable", "the server is shutting down") from None

    # running --------------------------------------------------------------------------------
    def _run(self, job_id: str, request: VideoRequest, control: _Control) -> None:
        try:
            with self._lock:
                control.started = not control.stop.is_set()
            if not control.started:
                self._stopped(job_id, control)
                return
            self._process(job_id, request, control)
        finally:
            with self._lock:
                self._controls.pop(job_id, None)
            control.done.set()

    def _process(self, job_id: str, request: VideoRequest, control: _Control) -> None:
        t0 = time.perf_counter()
        self.store.update(job_id, state="running", started=time.time())
        last = [0.0]

        def on_frames(done: int) -> None:
            if control.stop.is_set():
                raise adapter.VideoStopped(control.reason)
            if request.max_frames is not None and done > request.max_frames:
                raise adapter.InputError(f"the video is longer than the server's limit ({request.max_frames} frames)")
            now = time.perf_counter()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                self.store.update(job_id, frames_done=done, fps=done / max(now - t0, 1e-6))

        folder = self.folder(job_id)
        try:
            matter = self.get_matter(request.refine)
            plate: Any = request.plate
            if request.plate is not None and request.plate_is_image:
                plate = self.decode_plate(request.plate)
            spec, path = adapter.video_output(request.output, request.format, folder / "result")
            with collected() as notes:
                frames, lines = adapter.run_video(
                    matter,
                    request.source,
                    plate,
                    spec,
                    plate_frames=request.plate_frames,
                    background=request.background,
                    align=request.align,
                    smooth=request.smooth,
                    on_frames=on_frames,
                )
        except adapter.VideoStopped:
            self._stopped(job_id, control)
            return
        except (adapter.CleanplateError, Problem) as exc:
            detail = exc.detail if isinstance(exc, Problem) else str(exc).splitlines()[0]
            self._finish(job_id, "failed", detail=detail)
            return
        except Exception:
            log.exception("video job %s failed", job_id)
            self._finish(job_id, "failed", detail="the server failed on this job; see its log")
            return
        seconds = time.perf_counter() - t0
        self._remove_inputs(folder, keep=path.name)
        # a done job's detail: the plate warnings of its frames (what the CLI prints), if any
        for line in lines:
            add(notes, line)
        detail = "warning: " + " | ".join(notes) if notes else None
        counts = {"frames_done": frames, "frames_total": frames, "fps": frames / seconds}
        self._finish(job_id, "done", result=path.name, detail=detail, **counts)

    def _finish(self, job_id: str, state: str, **values: Any) -> None:
        now = time.time()
        if state != "done":
            self._remove_inputs(self.folder(job_id), keep=None)
        self.store.update(job_id, state=state, finished=now, expires=now + self.ttl, **values)

    def _stopped(self, job_id: str, control: _Control) -> None:
        if control.reason == "cancel":
            remove_tree(self.folder(job_id))
            self.store.delete(job_id)
        else:
            self._finish(job_id, "interrupted", detail="the server shut down before the job finished")

    @staticmethod
    def _remove_inputs(folder: Path, keep: str | None) -> None:
        for item in folder.iterdir() if folder.is_dir() else ():
            if item.name != keep:
                if item.is_dir():
                    remove_tree(item)
                else:
                    item.unlink(missing_ok=True)

    # cancel, expiry, shutdown ---------------------------------------------------------------
    def cancel(self, job_id: str, wait: float = 30.0) -> None:
        """Stop the job if it is queued or running, then remove its files and its row."""
        with self._lock:
            control = self._controls.get(job_id)
            if control is not None:
                control.reason = "cancel"
                control.stop.set()
        if control is not None and control.started:  # a queued job never starts: no need to wait
            control.done.wait(wait)
        remove_tree(self.folder(job_id))
        self.store.delete(job_id)

    def remove_orphans(self) -> int:
        """Remove job folders the database does not know (a crash between upload and record).

        Only safe while no upload is in flight, i.e. at startup.
        """
        removed = 0
        for folder in self.root.iterdir() if self.root.is_dir() else ():
            if folder.is_dir() and self.store.get(folder.name) is None:
                remove_tree(folder)
                removed += 1
        return removed

    def sweep(self, now: float | None = None) -> int:
        """Remove the files of every job whose time-to-live is over; returns how many."""
        now = time.time() if now is None else now
        ids = self.store.due(now)
        for job_id in ids:
            remove_tree(self.folder(job_id))
            self.store.update(job_id, state="expired", result=None)
        self.store.forget_old(now)
        return len(ids)

    def shutdown(self, grace: float) -> None:
        """Refuse new jobs, give the running one ``grace`` seconds, then stop it; mark what is left."""
        with self._lock:
            self._closed = True
            controls = list(self._controls.items())
        deadline = time.monotonic() + grace
        for job_id, control in controls:  # queued jobs never start
            job = self.store.get(job_id)
            if job is not None and job.state == "queued":
                control.reason = "shutdown"
                control.stop.set()
        for _job_id, control in controls:
            if not control.done.wait(max(0.0, deadline - time.monotonic())):
                control.reason = "shutdown"
                control.stop.set()
        self._executor.shutdown(wait=True, cancel_futures=False)
        with contextlib.suppress(Exception):
            self.store.recover()  # anything still marked active is, from now on, interrupted
