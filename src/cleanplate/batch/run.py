"""Drive a batch: resume from the ledger, run the items (locally or on Ray), report, summarise.

The driver owns the ledger. Before any model loads it decides, per item: skip (done, same
settings, outputs intact), redo (new, failed, interrupted, or an output went missing), or refuse
(an output exists that the batch did not write, or was changed by hand, and ``--force`` is not
given) so nothing anyone made is silently overwritten.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .adapter import OutputError, check_dir_creatable, ensure_dir
from .jobs import WorkItem
from .ledger import DONE, Ledger, check_output
from .work import is_permanent, reason, run_item

MODEL_KEYS = ("model", "backbone_scale", "refine_mode", "sample_pixels", "threshold", "backend", "precision")


@dataclass
class RayOptions:
    """How the Ray path places work. ``address``: 'local' starts Ray here; 'auto' or an address joins one."""

    address: str = "local"
    workers: int | None = None  # image actors (concurrency); None: as many as the CPUs/GPUs allow
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    batch_size: int = 4  # images per map_batches call
    segment_frames: int = 1500  # a video is cut at the first keyframe after every this many frames
    num_cpus: int | None = None  # for a local Ray: CPUs it may use (None: all)


@dataclass
class BatchConfig:
    outdir: Path
    model_params: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    max_attempts: int = 2  # tries per item per run for unexpected errors; input errors are not retried
    verify: bool = False  # full checksums of finished outputs (default: size + mtime, checksum if changed)
    ray: RayOptions | None = None
    progress: bool = True
    stream: TextIO | None = None  # where progress and failures go (default stderr)

    @property
    def model_key(self) -> dict[str, Any]:
        return {k: self.model_params.get(k) for k in MODEL_KEYS}


@dataclass
class ItemOutcome:
    item: WorkItem
    state: str  # done | failed | skipped
    error: str | None = None
    seconds: float = 0.0


@dataclass
class BatchSummary:
    outcomes: list[ItemOutcome]
    seconds: float
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)

    def count(self, state: str, media: str | None = None) -> int:
        return sum(1 for o in self.outcomes if o.state == state and (media is None or o.item.media == media))

    @property
    def failed(self) -> list[ItemOutcome]:
        return [o for o in self.outcomes if o.state == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.interrupted

    def table(self) -> str:
        """The end-of-run table: items by kind and state, then the failures with their reasons."""
        states = ["done", "failed", "skipped"] + (["pending"] if self.count("pending") else [])
        rows = [("", *states)]
        for media in ("image", "video"):
            n = [self.count(s, media) for s in states]
            if any(n):
                rows.append((f"{media}s", *map(str, n)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in rows
        ]
        for o in self.failed:
            lines.append(f"failed: {o.item.id}: {o.error}")
        pending = self.count("pending")
        tail = f", {pending} not started (interrupted)" if pending else ""
        lines.append(
            f"{self.count('done')} done, {len(self.failed)} failed, {self.count('skipped')} skipped{tail} "
            f"in {_duration(self.seconds)}"
        )
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Items done, rate and ETA: a live line on a terminal, a line every ``every`` seconds in a log."""

    def __init__(self, total: int, stream: TextIO, enabled: bool = True, every: float = 10.0) -> None:
        self.total, self.stream, self.enabled, self.every = total, stream, enabled, every
        self.done = self.failed = 0
        self.t0 = time.perf_counter()
        self._last = 0.0
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()

    def line(self) -> str:
        n = self.done + self.failed
        elapsed = time.perf_counter() - self.t0
        rate = n / elapsed if elapsed > 0 else 0.0
        eta = (self.total - n) / rate if rate > 0 else None
        failed = f", {self.failed} failed" if self.failed else ""
        eta_text = f", ETA {_duration(eta)}" if eta is not None and n < self.total else ""
        return f"cleanplate: {n}/{self.total} items{failed} ({rate:.2f} items/s{eta_text})"

    def update(self, ok: bool) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self._show(force=self.done + self.failed == self.total)

    def _show(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
        elif force or now - self._last >= self.every:
            self._last = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def write(self, text: str) -> None:
        """A message line that does not garble the live progress line."""
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        if self.tty:
            self._show()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class Batch:
    """One run over a list of items: the shared bookkeeping of the local and the Ray runner."""

    def __init__(self, items: list[WorkItem], config: BatchConfig) -> None:
        self.items, self.config = items, config
        self.stream = config.stream or sys.stderr
        self.outcomes: dict[str, ItemOutcome] = {}
        self.notes: list[str] = []
        self.fingerprints = {item.id: item.fingerprint(config.model_key) for item in items}
        self.ledger: Ledger | None = None
        self.progress: Progress | None = None
        self.t0 = time.perf_counter()

    # -- pre-flight -------------------------------------------------------------------------------
    def open(self) -> list[WorkItem]:
        """Open (and lock) the ledger, decide what to skip, register the rest; returns the items to run."""
        outdir = self.config.outdir
        check_dir_creatable(outdir)
        ensure_dir(outdir)
        self.ledger = Ledger(outdir)
        self.ledger.lock()
        stale = self.ledger.recover_stale()
        if stale:
            self.notes.append(f"{len(stale)} item(s) left running by a killed run are redone")
        records = self.ledger.records()
        todo: list[WorkItem] = []
        problems: list[str] = []
        for item in self.items:
            rec = records.get(item.id)
            fp = self.fingerprints[item.id]
            if rec is not None and rec.state == DONE:
                if rec.fingerprint != fp:
                    if not self.config.force:
                        problems.append(
                            f"{item.id} was finished with other settings (plate, outputs, options or model); "
                            "use --force to redo it, or another -o folder"
                        )
                        continue
                else:
                    states = [check_output(o, full=self.config.verify) for o in rec.outputs]
                    if all(s is None for s in states) and len(rec.outputs) == len(item.outputs):
                        self.outcomes[item.id] = ItemOutcome(item, "skipped")
                        continue
                    changed = [o["path"] for o, s in zip(rec.outputs, states, strict=True) if s == "changed"]
                    if changed and not self.config.force:
                        problems.append(f"{changed[0]} changed since the batch wrote it; use --force to redo {item.id}")
                        continue
            owned = set(rec.planned) if rec is not None else set()
            for out in item.outputs:
                if out.path.exists() and str(out.path) not in owned and not self.config.force:
                    problems.append(f"output {out.path} already exists (use --force to overwrite)")
                    break
            else:
                todo.append(item)
        if problems:
            self.close()
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise OutputError(f"{problems[0]}{more}")
        self.ledger.register(
            [(i.id, self.fingerprints[i.id], i.media, str(i.input), [str(o.path) for o in i.outputs]) for i in todo]
        )
        for item in todo:
            for out in item.outputs:
                out.path.parent.mkdir(parents=True, exist_ok=True)
        return todo

    # -- recording --------------------------------------------------------------------------------
    def start_progress(self, total: int) -> None:
        self.progress = Progress(total, self.stream, self.config.progress)

    def started(self, items: list[WorkItem]) -> None:
        assert self.ledger is not None
        self.ledger.start([i.id for i in items])

    def finished(self, item: WorkItem, outputs: list[dict[str, Any]], seconds: float) -> None:
        assert self.ledger is not None
        self.ledger.finish(item.id, outputs, seconds)
        self.outcomes[item.id] = ItemOutcome(item, "done", seconds=seconds)
        if self.progress is not None:
            self.progress.update(True)

    def failed(self, item: WorkItem, error: str) -> None:
        assert self.ledger is not None
        self.ledger.fail(item.id, error)
        self.outcomes[item.id] = ItemOutcome(item, "failed", error)
        if self.progress is not None:
            self.progress.update(False)
            self.progress.write(f"cleanplate: failed: {item.id}: {error}")
        else:
            self.stream.write(f"cleanplate: failed: {item.id}: {error}\n")

    def released(self, items: list[WorkItem]) -> None:
        assert self.ledger is not None
        self.ledger.release([i.id for i in items if i.id not in self.outcomes])

    def summary(self, interrupted: bool = False) -> BatchSummary:
        outcomes = [self.outcomes.get(i.id) or ItemOutcome(i, "pending") for i in self.items]
        return BatchSummary(outcomes, time.perf_counter() - self.t0, interrupted, self.notes)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        if self.ledger is not None:
            sweep_temp_files(self.items)
            self.ledger.close()
            self.ledger = None


def sweep_temp_files(items: list[WorkItem]) -> int:
    """Remove hidden temp files a killed worker left beside the outputs (``.NAME.tmp-XXXX.EXT``)."""
    by_dir: dict[Path, set[str]] = {}
    for item in items:
        for out in item.outputs:
            by_dir.setdefault(out.path.parent, set()).add(out.path.stem)
    removed = 0
    for folder, stems in by_dir.items():
        with contextlib.suppress(OSError):
            for entry in folder.iterdir():
                name = entry.name
                if name.startswith(".") and ".tmp-" in name and name[1:].split(".tmp-")[0] in stems:
                    with contextlib.suppress(OSError):
                        entry.unlink()
                        removed += 1
    return removed


def run_local(batch: Batch, todo: list[WorkItem], load: Callable[[], Any]) -> bool:
    """Every item in this process with the existing pipelines; returns False when interrupted."""
    matter = load() if todo else None
    batch.start_progress(len(todo))
    attempts = max(1, batch.config.max_attempts)
    for item in todo:
        for attempt in range(1, attempts + 1):
            batch.started([item])
            t0 = time.perf_counter()
            try:
                outputs = run_item(matter, item)
            except KeyboardInterrupt:
                batch.released([item])
                return False
            except Exception as exc:  # noqa: BLE001 - one item's failure never stops the others
                if is_permanent(exc) or attempt == attempts:
                    batch.failed(item, reason(exc))
                    break
                continue
            batch.finished(item, outputs, time.perf_counter() - t0)
            break
    return True


def run_batch(items: list[WorkItem], config: BatchConfig, *, load: Callable[[], Any] | None = None) -> BatchSummary:
    """Run ``items`` into ``config.outdir``: locally, or on Ray when ``config.ray`` is set.

    ``load`` builds the model (default: ``cleanplate.load`` from ``config.model_params``); it is
    called only after the pre-flight passed and only if there is work. Ctrl-C returns a summary
    with ``interrupted`` set; the ledger is consistent and a re-run resumes.
    """
    from .adapter import load_matter

    batch = Batch(items, config)
    todo = batch.open()
    loader = load or (lambda: load_matter(config.model_params))
    completed = True
    try:
        if config.ray is not None:
            from .ray_runner import run_ray

            completed = run_ray(batch, todo, config.ray)
        else:
            completed = run_local(batch, todo, loader)
    except KeyboardInterrupt:
        completed = False
    finally:
        if batch.ledger is not None:
            with contextlib.suppress(Exception):
                batch.released(todo)
        batch.close()
    return batch.summary(interrupted=not completed)
