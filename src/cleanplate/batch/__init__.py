"""``cleanplate batch``: thousands of images and videos, on one machine or a Ray cluster, resumable.

>>> from cleanplate.batch import JobDefaults, BatchConfig, load_jobs, run_batch   # doctest: +SKIP
>>> items = load_jobs(Path("shots/"), JobDefaults(outdir=Path("out"), plate=Path("plate.jpg")))
>>> summary = run_batch(items, BatchConfig(outdir=Path("out"), model_params={"model": "classical"}))
>>> print(summary.table())

Modules: :mod:`.jobs` (folder / manifest → work items, pre-flight), :mod:`.work` (the core: one
item, no Ray), :mod:`.ledger` (SQLite state), :mod:`.run` (resume, local runner, summary),
:mod:`.ray_runner` (Ray Data actors for images, tasks for video segments), :mod:`.segments`
(keyframe cuts and lossless stitching), :mod:`.adapter` (the only imports from the rest of
cleanplate). Nothing here imports Ray unless the Ray path runs.
"""

from __future__ import annotations

from .jobs import JobDefaults, Output, WorkItem, load_jobs
from .run import BatchConfig, BatchSummary, RayOptions, run_batch

__all__ = ["BatchConfig", "BatchSummary", "JobDefaults", "Output", "RayOptions", "WorkItem", "load_jobs", "run_batch"]
