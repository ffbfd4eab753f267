"""Threads and bounded queues for the decode → infer → encode pipeline.

Queues are bounded, so a fast decoder waits for a slow model instead of filling memory: memory
stays flat however long the video is. Workers store their exception instead of printing it; the
main thread re-raises it once (:meth:`Worker.check`), so a failure anywhere stops the run the same
way and is reported once.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

END = object()  # end-of-stream marker put on queues
POLL_S = 0.1


class Worker(threading.Thread):
    """A daemon thread running ``target``; its exception is kept in :attr:`error`.

    ``target`` runs in a copy of the creating thread's context variables (a plain thread starts
    with an empty context), so per-call state such as a server request's warning collector
    reaches the decode, infer and encode threads of that call.
    """

    def __init__(self, name: str, target: Callable[[], None]) -> None:
        super().__init__(name=f"cleanplate-{name}", daemon=True)
        self._target_fn = target
        self._context = contextvars.copy_context()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._context.run(self._target_fn)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc

    def check(self) -> None:
        """Re-raise the worker's exception in the calling thread (once)."""
        error, self.error = self.error, None
        if error is not None:
            raise error


def put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item``, waiting while the queue is full; False when ``stop`` was set meanwhile."""
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def put_checked(q: queue.Queue, item: Any, worker: Worker) -> None:
    """Put ``item`` for ``worker``; re-raise the worker's error instead of waiting forever if it died."""
    while True:
        worker.check()
        if not worker.is_alive():
            raise RuntimeError(f"{worker.name} stopped unexpectedly")
        try:
            q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            continue


def drain(q: queue.Queue, producer: Worker) -> Iterator[Any]:
    """Items from ``q`` until :data:`END`; re-raises the producer's error (checked while waiting)."""
    while True:
        try:
            item = q.get(timeout=POLL_S)
        except queue.Empty:
            producer.check()
            if not producer.is_alive() and q.empty():
                producer.check()
                return
            continue
        if item is END:
            producer.check()
            return
        yield item


def discard(q: queue.Queue) -> None:
    """Empty ``q`` without blocking (so a producer blocked on put can notice ``stop``)."""
    with contextlib.suppress(queue.Empty):
        while True:
            q.get_nowait()


@contextlib.contextmanager
def deferred_sigint() -> Iterator[list[int]]:
    """Hold Ctrl-C while outputs are being closed, so a second press cannot corrupt them.

    Yields a list that collects the signals received; only works in the main thread (elsewhere it
    does nothing, which is fine: signals are only delivered to the main thread).
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    except ValueError:
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)
