"""The pipeline's worker threads (pipeline/workers.py)."""

from __future__ import annotations

import contextvars

import pytest

from cleanplate.pipeline.workers import Worker

_request: contextvars.ContextVar[str | None] = contextvars.ContextVar("request", default=None)


def test_a_worker_runs_in_its_creators_context() -> None:
    # a server request's warning collector is a context variable: it must reach decode/infer/encode
    seen: list[str | None] = []
    token = _request.set("job-1")
    try:
        worker = Worker("probe", lambda: seen.append(_request.get()))
    finally:
        _request.reset(token)
    worker.start()
    worker.join(timeout=10)
    assert seen == ["job-1"]


def test_a_workers_error_is_raised_once_in_the_caller() -> None:
    def fail() -> None:
        raise ValueError("decode failed")

    worker = Worker("fail", fail)
    worker.start()
    worker.join(timeout=10)
    with pytest.raises(ValueError, match="decode failed"):
        worker.check()
    worker.check()  # once only
