"""Where the model runs: a bounded pool of threads, never the event loop.

A request either gets a place (running or waiting) or is refused at once with 429 and a
``Retry-After`` estimated from recent service times; nothing queues without bound, so a burst of
clients cannot grow memory. All model calls (image requests and video jobs) go through one lock
held by :class:`ModelHost`: the network already uses every core, so running two at once only
thrashes, and a Matter's per-call settings (backbone scale) are not meant to be shared.
"""

from __future__ import annotations

import asyncio
import collections
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from . import adapter
from .problems import Problem

T = TypeVar("T")


class InferencePool:
    """A thread pool that admits at most ``workers + queue_size`` tasks at a time."""

    def __init__(self, workers: int, queue_size: int) -> None:
        self.workers = workers
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cleanplate-infer")
        self._lock = threading.Lock()
        self._pending = 0
        self._durations: collections.deque[float] = collections.deque(maxlen=20)
        self._closed = False

    @property
    def pending(self) -> int:
        return self._pending

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue's length times a typical service time."""
        typical = sorted(self._durations)[len(self._durations) // 2] if self._durations else 1.0
        return max(1, math.ceil(typical * max(1, self._pending) / self.workers))

    async def run(self, fn: Callable[..., T], *args: Any) -> tuple[T, float, float]:
        """Run ``fn(*args)`` on a worker; returns (result, seconds waited, seconds run).

        Raises :class:`Problem` 429 when full and 503 once shutdown began. If the client goes
        away while waiting, the task still completes (its place is freed when it does), so the
        count of running work is always true.
        """
        with self._lock:
            if self._closed:
                raise Problem("unavailable", "the server is shutting down")
            if self._pending >= self.capacity:
                raise Problem(
                    "busy",
                    f"all {self.capacity} places are taken; retry later",
                    headers={"Retry-After": str(self.retry_after())},
                )
            self._pending += 1
        queued = time.perf_counter()
        timing: dict[str, float] = {}

        def task() -> T:
            timing["start"] = time.perf_counter()
            try:
                return fn(*args)
            finally:
                timing["end"] = time.perf_counter()

        try:
            future: Future[T] = self._executor.submit(task)
        except RuntimeError:  # executor shut down between the check and the submit
            self._release(None)
            raise Problem("unavailable", "the server is shutting down") from None
        future.add_done_callback(lambda f: self._release(timing))
        result = await asyncio.wrap_future(future)
        start = timing.get("start", queued)
        return result, start - queued, timing.get("end", start) - start

    def _release(self, timing: dict[str, float] | None) -> None:
        with self._lock:
            self._pending -= 1
            if timing and "end" in timing:
                self._durations.append(timing["end"] - timing["start"])

    def shutdown(self) -> None:
        """Refuse new work; running and waiting tasks finish (uvicorn waits for their requests)."""
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True, cancel_futures=False)


class LockedMatter:
    """A Matter whose model calls take the host's lock (video jobs and image requests interleave)."""

    def __init__(self, matter: Any, lock: threading.Lock) -> None:
        self._matter, self._lock = matter, lock
        self.device = matter.device
        self.info = getattr(matter, "info", {})
        self._timing = threading.local()

    def matte(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        with self._lock:
            t1 = time.perf_counter()
            try:
                return self._matter.matte(*args, **kwargs)
            finally:
                self._timing.last = (t1 - t0, time.perf_counter() - t1)

    def last_timing(self) -> tuple[float, float]:
        """(seconds waiting for the model, seconds running it) of this thread's last :meth:`matte`."""
        return getattr(self._timing, "last", (0.0, 0.0))

    def matte_tensor(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return self._matter.matte_tensor(*args, **kwargs)


class ModelHost:
    """The served model, loaded once, plus variants for per-request refine options (bounded LRU)."""

    def __init__(
        self,
        model: str | None,
        *,
        device: str = "auto",
        refine: dict[str, Any] | None = None,
        cache: int = 4,
        loader: Callable[..., Any] | None = None,
    ) -> None:
        self.model = model
        self.device = device
        self.refine = dict(refine or {})
        self.cache = cache
        self._loader = loader or adapter.load_model
        self._run_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._matters: collections.OrderedDict[tuple, LockedMatter] = collections.OrderedDict()
        self._default_key = self._key({})
        self.default = self.get({})

    @property
    def name(self) -> str:
        info = self.default.info
        return str(info.get("name") or info.get("path") or self.model or "default")

    def describe(self) -> dict[str, Any]:
        info = self.default.info
        keys = ("name", "architecture", "backbone", "format", "backend", "precision", "parameters")
        return {k: info[k] for k in keys if k in info} | {"device": str(self.default.device)}

    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        return {**self.refine, **{k: v for k, v in overrides.items() if v is not None}}

    def _key(self, overrides: dict[str, Any]) -> tuple:
        return tuple(sorted(self._options(overrides).items()))

    def get(self, overrides: dict[str, Any]) -> LockedMatter:
        """The Matter for the server's refine options updated by ``overrides`` (loaded on first use)."""
        options = self._options(overrides)
        key = self._key(overrides)
        with self._load_lock:
            if key in self._matters:
                self._matters.move_to_end(key)
                return self._matters[key]
            matter = LockedMatter(self._loader(self.model, device=self.device, **options), self._run_lock)
            self._matters[key] = matter
            while len(self._matters) > self.cache:
                oldest = next(iter(self._matters))
                if oldest == self._default_key:  # the server's own model stays
                    self._matters.move_to_end(oldest)
                    oldest = next(iter(self._matters))
                del self._matters[oldest]
            return matter
