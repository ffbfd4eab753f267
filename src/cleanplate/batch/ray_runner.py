"""The Ray path: Ray Data for images, Ray tasks for video segments, the ledger kept by the driver.

Images: one dataset row per item, ``map_batches`` over an actor class that loads the model once
per worker; CPUs/GPUs per actor and the number of actors are configurable. Ray Data restarts an
actor that dies and retries its batch, and the core writes every file atomically under a fixed
name, so a retried batch replaces, never duplicates. Python errors are caught per item in the
actor and come back as that item's reason.

Videos: the driver scans packets and cuts each video at keyframes; every segment is a task (the
model cached per worker process) writing intraframe files under ``OUTDIR/.cleanplate/segments``;
finished segments are recorded, so a re-run redoes only the missing ones; when a video's segments
are all in, a stitch task remuxes them into the final file with the source's audio.

Outputs go straight to OUTDIR from the workers: on a cluster OUTDIR (and the inputs) must be on a
filesystem every node sees at the same path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .adapter import MissingDependencyError
from .jobs import Output, WorkItem
from .run import Batch, RayOptions
from .segments import Segment, VideoPlan, plan_segments, segment_outputs, splittable, stitch
from .work import is_permanent, reason, run_image, run_segment, run_video

_MATTERS: dict[str, Any] = {}


def _matter(model_params: dict[str, Any]) -> Any:
    """The model for these settings, loaded once per worker process (tasks reuse their worker)."""
    from .adapter import load_matter

    key = json.dumps(model_params, sort_keys=True, default=str)
    if key not in _MATTERS:
        _MATTERS.clear()
        _MATTERS[key] = load_matter(model_params)
    return _MATTERS[key]


class ImageWorker:
    """Ray Data actor: the model is loaded in ``__init__``, once per actor, and kept for every batch."""

    def __init__(self, model_params: dict[str, Any], max_attempts: int = 2) -> None:
        self.matter = _matter(model_params)
        self.max_attempts = max(1, max_attempts)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"id": [], "ok": [], "error": [], "outputs": [], "seconds": []}
        for text in batch["item"]:
            item = WorkItem.from_json(json.loads(str(text)))
            t0 = time.perf_counter()
            error, records = None, []
            for attempt in range(1, self.max_attempts + 1):
                try:
                    records = run_image(self.matter, item)
                    error = None
                    break
                except Exception as exc:  # noqa: BLE001 - reported per item, the batch goes on
                    error = reason(exc)
                    if is_permanent(exc) or attempt == self.max_attempts:
                        break
            out["id"].append(item.id)
            out["ok"].append(error is None)
            out["error"].append(error or "")
            out["outputs"].append(json.dumps(records))
            out["seconds"].append(time.perf_counter() - t0)
        return out


def _segment_task(model_params: dict[str, Any], item_json: dict, segment: dict, outputs: list[dict]) -> dict:
    item = WorkItem.from_json(item_json)
    seg = Segment(**segment)
    outs = [Output(o["kind"], _path(o["path"]), o.get("preset"), o.get("pattern")) for o in outputs]
    try:
        frames, records = run_segment(_matter(model_params), item, seg, outs)
    except Exception as exc:  # noqa: BLE001 - returned as the item's reason
        return {"ok": False, "error": reason(exc), "permanent": is_permanent(exc)}
    return {"ok": True, "frames": frames, "outputs": records}


def _whole_video_task(model_params: dict[str, Any], item_json: dict) -> dict:
    item = WorkItem.from_json(item_json)
    try:
        records = run_video(_matter(model_params), item)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": reason(exc), "permanent": is_permanent(exc)}
    return {"ok": True, "outputs": records}


def _stitch_task(item_json: dict, plan: dict, pieces: list[list[dict]]) -> dict:
    from fractions import Fraction

    from .ledger import describe_output

    item = WorkItem.from_json(item_json)
    vplan = VideoPlan(
        time_base=Fraction(plan["time_base"]),
        first_pts=plan["first_pts"],
        origin=plan["origin"],
        frames=plan["frames"],
        segments=[Segment(**s) for s in plan["segments"]],
    )
    outs = [[Output(o["kind"], _path(o["path"]), o.get("preset"), o.get("pattern")) for o in seg] for seg in pieces]
    try:
        stitch(item, vplan, outs, audio=bool(item.option("audio", True)))
        records = [describe_output(o.path) for o in item.outputs]
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": reason(exc), "permanent": is_permanent(exc)}
    for seg in outs:  # the segments are in the final file now
        for o in seg:
            _remove(o.path)
    if outs and outs[0]:
        with contextlib.suppress(OSError):
            outs[0][0].path.parent.rmdir()
    return {"ok": True, "outputs": records}


def _path(text: str):
    from pathlib import Path

    return Path(text)


def _remove(path) -> None:
    import shutil

    with contextlib.suppress(OSError):
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _plan_json(plan: VideoPlan) -> dict:
    return {
        "time_base": str(plan.time_base),
        "first_pts": plan.first_pts,
        "origin": plan.origin,
        "frames": plan.frames,
        "segments": [s.__dict__ for s in plan.segments],
    }


def _outs_json(outs: list[Output]) -> list[dict]:
    return [{"kind": o.kind, "path": str(o.path), "preset": o.preset, "pattern": o.pattern} for o in outs]


@dataclass
class _VideoJob:
    item: WorkItem
    plan: VideoPlan | None  # None: one piece (not splittable)
    pieces: list[list[Output]] = field(default_factory=list)
    pending: dict[Any, int] = field(default_factory=dict)  # ObjectRef -> segment index (-1: whole / stitch)
    tries: dict[int, int] = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)
    stitching: bool = False
    failed: bool = False


def _init_ray(opts: RayOptions) -> bool:
    """Connect to (or start) Ray; returns whether this call started it (and so shuts it down)."""
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("--ray needs Ray: pip install 'cleanplate[ray]'") from None
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if opts.address in ("local", ""):
        kwargs["num_cpus"] = opts.num_cpus
        # Ray runs its workers at nice 15; here they are the batch itself, and on a machine shared
        # with other jobs they would starve. A Ray started for this run gives them normal priority.
        os.environ.setdefault("RAY_worker_niceness", "0")
    else:
        kwargs["address"] = opts.address
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise MissingDependencyError(f"cannot connect to the Ray cluster at {opts.address}: {exc}") from None
    return True


class RayDriver:
    def __init__(self, batch: Batch, opts: RayOptions) -> None:
        import ray

        self.ray, self.batch, self.opts = ray, batch, opts
        self.params = batch.config.model_params
        self.max_attempts = max(1, batch.config.max_attempts)
        res = {"num_cpus": opts.cpus_per_worker, "num_gpus": opts.gpus_per_worker}
        # Ray retries a task whose worker died (max_retries); Python errors come back as values.
        self.segment_fn = ray.remote(_segment_task).options(
            **res, max_retries=self.max_attempts, retry_exceptions=False
        )
        self.whole_fn = ray.remote(_whole_video_task).options(**res, max_retries=self.max_attempts)
        self.stitch_fn = ray.remote(_stitch_task).options(num_cpus=1, max_retries=self.max_attempts)
        self.videos: dict[Any, _VideoJob] = {}  # ObjectRef -> job
        self.workdir = batch.config.outdir / ".cleanplate" / "segments"

    # -- videos -----------------------------------------------------------------------------------
    def submit_video(self, item: WorkItem) -> None:
        job = _VideoJob(item, None)
        self.batch.started([item])
        if not splittable(item):
            self._track(job, self.whole_fn.remote(self.params, item.to_json()), -1)
            return
        try:
            job.plan = plan_segments(item, self.opts.segment_frames)
        except Exception as exc:  # noqa: BLE001
            self.batch.failed(item, reason(exc))
            return
        assert self.batch.ledger is not None
        fp = self.batch.fingerprints[item.id]
        folder = self.workdir / hashlib.sha256(item.id.encode()).hexdigest()[:16]
        done = self.batch.ledger.segments(item.id, fp)
        from .ledger import check_output

        for seg in job.plan.segments:
            outs = segment_outputs(item, folder, seg.index)
            job.pieces.append(outs)
            prev = done.get(seg.index)
            if prev is not None and prev[0] == [seg.start, seg.end] and all(check_output(o) is None for o in prev[2]):
                continue  # finished in an earlier run
            self._submit_segment(job, seg)
        if not job.pending:
            self._submit_stitch(job)

    def _track(self, job: _VideoJob, ref: Any, index: int) -> None:
        job.pending[ref] = index
        self.videos[ref] = job

    def _submit_segment(self, job: _VideoJob, seg: Segment) -> None:
        outs = _outs_json(job.pieces[seg.index])
        ref = self.segment_fn.remote(self.params, job.item.to_json(), seg.__dict__, outs)
        self._track(job, ref, seg.index)

    def _submit_stitch(self, job: _VideoJob) -> None:
        assert job.plan is not None
        job.stitching = True
        pieces = [_outs_json(p) for p in job.pieces]
        self._track(job, self.stitch_fn.remote(job.item.to_json(), _plan_json(job.plan), pieces), -1)

    def poll(self, timeout: float = 0.0) -> None:
        """Take in finished video tasks; submit stitches and retries."""
        if not self.videos:
            return
        ready, _ = self.ray.wait(list(self.videos), num_returns=len(self.videos), timeout=timeout)
        for ref in ready:
            job = self.videos.pop(ref)
            index = job.pending.pop(ref)
            try:
                result = self.ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - the task's worker died more often than retried
                result = {"ok": False, "error": reason(exc), "permanent": True}
            self._take(job, index, result)

    def _take(self, job: _VideoJob, index: int, result: dict) -> None:
        if job.failed:
            return
        item = job.item
        if not result["ok"]:
            tries = job.tries.get(index, 1)
            if index >= 0 and not result.get("permanent") and tries < self.max_attempts:
                job.tries[index] = tries + 1
                self._submit_segment(job, job.plan.segments[index])  # type: ignore[union-attr]
                return
            job.failed = True
            for ref in list(job.pending):
                self.ray.cancel(ref)
                self.videos.pop(ref, None)
            job.pending.clear()
            where = f"segment {index}: " if index >= 0 else ""
            self.batch.failed(item, f"{where}{result['error']}")
            return
        if index >= 0:
            assert self.batch.ledger is not None and job.plan is not None
            seg = job.plan.segments[index]
            self.batch.ledger.segment_done(
                item.id,
                self.batch.fingerprints[item.id],
                index,
                [seg.start, seg.end],
                result["frames"],
                result["outputs"],
            )
            if not job.pending:
                self._submit_stitch(job)
            return
        self.batch.finished(item, result["outputs"], time.perf_counter() - job.t0)

    # -- images -----------------------------------------------------------------------------------
    def run_images(self, items: list[WorkItem]) -> None:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        with _quiet_logs():
            self.batch.started(items)
            by_id = {i.id: i for i in items}
            rows = [{"item": json.dumps(i.to_json())} for i in items]
            blocks = max(1, min(len(rows), 4 * max(1, len(rows) // max(1, self.opts.batch_size))))
            ds = ray.data.from_items(rows, override_num_blocks=min(blocks, len(rows)))
            kwargs: dict[str, Any] = {
                "fn_constructor_kwargs": {"model_params": self.params, "max_attempts": self.max_attempts},
                "batch_size": self.opts.batch_size,
                "num_cpus": self.opts.cpus_per_worker,
                "compute": ray.data.ActorPoolStrategy(size=self.opts.workers or self._default_workers()),
            }
            if self.opts.gpus_per_worker:
                kwargs["num_gpus"] = self.opts.gpus_per_worker
            seen: set[str] = set()
            try:
                for row in ds.map_batches(ImageWorker, **kwargs).iter_rows():
                    item = by_id[row["id"]]
                    if item.id in seen:  # a retried batch that had already returned: once is enough
                        continue
                    seen.add(item.id)
                    if row["ok"]:
                        self.batch.finished(item, json.loads(row["outputs"]), float(row["seconds"]))
                    else:
                        self.batch.failed(item, str(row["error"]))
                    self.poll()
            except (KeyboardInterrupt, MissingDependencyError):
                raise
            except Exception as exc:  # noqa: BLE001 - the dataset stopped: the rest is reported, not lost
                why = f"the Ray dataset stopped ({reason(exc)})"
                for item in items:
                    if item.id not in seen:
                        self.batch.failed(item, why)

    def _default_workers(self) -> int:
        res = self.ray.cluster_resources()
        if self.opts.gpus_per_worker:
            return max(1, int(res.get("GPU", 1) // self.opts.gpus_per_worker))
        return max(1, int(res.get("CPU", 1) // max(self.opts.cpus_per_worker, 1e-3)))

    def wait_videos(self) -> None:
        while self.videos:
            self.poll(timeout=1.0)

    def cancel(self) -> None:
        for ref in list(self.videos):
            self.ray.cancel(ref, force=True)
        self.videos.clear()


class _quiet_logs:
    """Ray Data logs every dataset's plan at INFO on the driver; the batch has its own progress."""

    def __enter__(self) -> None:
        self.loggers = [logging.getLogger(n) for n in ("ray.data", "ray")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        for lg, level in zip(self.loggers, self.levels, strict=True):
            lg.setLevel(level)


def _check_model(params: dict[str, Any]) -> None:
    """Load the model once in the driver (on CPU) so a bad --model is one line, not a dying actor pool."""
    from .adapter import load_matter

    if params.get("precision") == "fp16":
        return  # needs CUDA, which the driver may not have; the actors report it
    load_matter({**params, "device": "cpu"})


def run_ray(batch: Batch, todo: list[WorkItem], opts: RayOptions) -> bool:
    """Run ``todo`` on Ray; returns False when interrupted (the ledger is then released)."""
    if not todo:
        batch.start_progress(0)
        return True
    _check_model(batch.config.model_params)
    started = _init_ray(opts)
    driver = RayDriver(batch, opts)
    batch.start_progress(len(todo))
    try:
        for item in todo:
            if item.media == "video":
                driver.submit_video(item)
        images = [i for i in todo if i.media == "image"]
        if images:
            driver.run_images(images)
        driver.wait_videos()
    except KeyboardInterrupt:
        driver.cancel()
        return False
    finally:
        if started:
            driver.ray.shutdown()
    return True
