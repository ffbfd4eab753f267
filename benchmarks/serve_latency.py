"""Latency of ``POST /v1/matte`` for a 1-megapixel pair: 1 client and 4 concurrent clients, side by side.

    python benchmarks/serve_latency.py                       # built-in model, 12 requests per client count
    python benchmarks/serve_latency.py --model classical --requests 20 --clients 1,2,4

A real server (uvicorn on 127.0.0.1, the app ``cleanplate serve`` runs) with the given model;
the pair is the bundled carpark sample resized to 1224x816 (0.999 Mpx), sent as PNG, output
``rgba`` PNG. One warm-up request, then for each client count N, N threads each send
``--requests`` requests back to back; latency is measured per request at the client (upload +
queue + decode + matte + encode + download). The runs alternate between client counts in rounds,
so load from other processes hits all of them alike. From ``Server-Timing``: *wait* is the time a
request waited for a worker and then for the model (one model call at a time), *model* the time in
the model itself.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from PIL import Image  # noqa: E402

from cleanplate.samples import sample_pair  # noqa: E402
from cleanplate.serve import Limits, ServeConfig, create_app  # noqa: E402

SIZE = (1224, 816)  # 0.999 megapixels, the carpark aspect


def _png(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").resize(SIZE, Image.Resampling.LANCZOS).save(buf, "PNG")
    return buf.getvalue()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _server_ms(response: httpx.Response) -> tuple[float, float]:
    """(ms waiting: for a worker and for the model, ms running the model) from Server-Timing."""
    parts = {k: float(v) for k, v in (p.strip().split(";dur=") for p in response.headers["server-timing"].split(","))}
    return parts["queue"] + parts["wait"], parts["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint or built-in name [default: the built-in model]")
    parser.add_argument("--requests", type=int, default=12, help="requests per client per round set")
    parser.add_argument("--clients", default="1,4", help="comma list of concurrent client counts")
    parser.add_argument("--rounds", type=int, default=3, help="the client counts alternate this many times")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    frame, plate = (_png(p) for p in sample_pair("carpark"))

    limits = Limits(queue_size=max(counts) * 2)  # the default 2 workers; nobody is refused
    with tempfile.TemporaryDirectory() as state:
        app = create_app(ServeConfig(model=args.model, state_dir=Path(state), limits=limits))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        upload = {"image": ("frame.png", frame, "image/png"), "plate": ("plate.png", plate, "image/png")}

        def one(client: httpx.Client) -> tuple[float, float, float]:
            t0 = time.perf_counter()
            r = client.post("/v1/matte", files=upload)
            r.raise_for_status()
            return (time.perf_counter() - t0) * 1000, *_server_ms(r)

        with httpx.Client(base_url=url, timeout=600) as warm:
            one(warm)
        results: dict[int, list[tuple[float, float, float]]] = {n: [] for n in counts}
        walls: dict[int, list[tuple[float, int]]] = {n: [] for n in counts}  # (seconds, requests) per round
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for n in counts:

                def client_loop(_: int) -> list[tuple[float, float, float]]:
                    with httpx.Client(base_url=url, timeout=600) as c:
                        return [one(c) for _ in range(per_round)]

                t0 = time.perf_counter()
                with ThreadPoolExecutor(n) as pool:
                    for batch in pool.map(client_loop, range(n)):
                        results[n].extend(batch)
                walls[n].append((time.perf_counter() - t0, n * per_round))
        server.should_exit = True
        thread.join(timeout=60)

    print(f"model: {app.state.server.host.name}, pair {SIZE[0]}x{SIZE[1]} PNG, output rgba PNG, {args.rounds} rounds")
    print("| clients | requests | p50 ms | p95 ms | mean wait ms | mean model ms | throughput req/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in counts:
        rows = results[n]
        latency = [r[0] for r in rows]
        throughput = sum(k for _, k in walls[n]) / sum(w for w, _ in walls[n])
        queue_ms = statistics.mean(r[1] for r in rows)
        matte_ms = statistics.mean(r[2] for r in rows)
        p50, p95 = _percentile(latency, 0.5), _percentile(latency, 0.95)
        print(f"| {n} | {len(rows)} | {p50:.0f} | {p95:.0f} | {queue_ms:.0f} | {matte_ms:.0f} | {throughput:.2f} |")


if __name__ == "__main__":
    main()
