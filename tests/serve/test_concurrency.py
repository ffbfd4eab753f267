"""More parallel requests than places: each one is a 200 or a 429, never a 5xx; memory stays bounded."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from cleanplate.serve import Limits

from .conftest import assert_problem, files, slow_loader, wait_for

CLIENTS = 10
WAVES = 3


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_burst_beyond_the_queue(serve, pair) -> None:
    live = serve(loader=slow_loader(0.3), limits=Limits(workers=1, queue_size=2))  # 3 places
    start = threading.Barrier(CLIENTS)

    def one(_: int) -> httpx.Response:
        with live.client() as c:
            start.wait(timeout=30)
            return c.post("/v1/matte", files=files(*pair))

    statuses: list[int] = []
    rss: list[int] = []
    for _ in range(WAVES):
        with ThreadPoolExecutor(CLIENTS) as pool:
            responses = list(pool.map(one, range(CLIENTS)))
        for r in responses:
            assert r.status_code in (200, 429), (r.status_code, r.text[:300])
            if r.status_code == 429:
                assert_problem(r, 429, "busy")
                assert int(r.headers["retry-after"]) >= 1
        statuses += [r.status_code for r in responses]
        rss.append(_rss_bytes())
        wait_for(lambda: live.app.state.server.pool.pending == 0, timeout=30)  # every place is given back
    assert statuses.count(200) >= 3 * WAVES  # all places were used in each wave
    assert statuses.count(429) >= WAVES  # and the rest was refused, not queued without bound
    assert rss[-1] - rss[0] < 200 * 2**20, [r / 2**20 for r in rss]


def test_the_event_loop_stays_free_while_the_model_runs(serve, pair) -> None:
    """A slow matte in flight: /healthz still answers first, and sees the busy place."""
    live = serve(loader=slow_loader(2.0), limits=Limits(workers=1, queue_size=0))
    order: list[str] = []

    def matte() -> None:
        with live.client() as c:
            r = c.post("/v1/matte", files=files(*pair))
            order.append(f"matte {r.status_code}")

    thread = threading.Thread(target=matte)
    thread.start()
    wait_for(lambda: live.app.state.server.pool.pending == 1, timeout=30, interval=0.01)
    with live.client() as c:
        health = c.get("/healthz").json()
        order.append("healthz")
        busy = c.post("/v1/matte", files=files(*pair))  # the only place is taken
    thread.join(timeout=60)
    assert health["queue"] == {"pending": 1, "capacity": 1}
    assert_problem(busy, 429, "busy")
    assert order == ["healthz", "matte 200"]
