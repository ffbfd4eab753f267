"""Fixtures for the server tests: a real uvicorn server on 127.0.0.1, small images and clips.

Every test talks HTTP to a real server (uvicorn in a thread, bound to a free loopback port), so
the streaming upload parser, the limits and the thread pool run exactly as in production. The
``classical`` keyer stands in for a network where the model itself is not under test: it is
fast on small images and needs no weights.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'cleanplate[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'cleanplate[serve]')")
httpx = pytest.importorskip("httpx", reason="httpx is not installed (pip install 'cleanplate[dev]')")

import uvicorn  # noqa: E402

from cleanplate.serve import Limits, ServeConfig, create_app  # noqa: E402

START_TIMEOUT_S = 30


class LiveServer:
    """uvicorn serving ``app`` in a daemon thread; ``url`` is its base address."""

    def __init__(self, app: Any) -> None:
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        sock = self.server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the test server did not stop"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``serve(limits=..., token=..., loader=...)`` → a started :class:`LiveServer` (stopped after the test)."""
    servers: list[LiveServer] = []

    def start(
        *,
        model: str = "classical",
        limits: Limits | None = None,
        token: str | None = None,
        state_dir: Path | None = None,
        loader: Callable[..., Any] | None = None,
    ) -> LiveServer:
        config = ServeConfig(
            model=model, device="cpu", token=token, state_dir=state_dir or tmp_path / "state", limits=limits or Limits()
        )
        live = LiveServer(create_app(config, loader=loader)).start()
        servers.append(live)
        return live

    yield start
    for live in reversed(servers):
        live.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One classical-model server with default limits, for tests that do not change settings."""
    config = ServeConfig(model="classical", device="cpu", state_dir=tmp_path_factory.mktemp("state"))
    live = LiveServer(create_app(config)).start()
    yield live
    live.stop()


@pytest.fixture
def client(shared_server: LiveServer) -> Iterator[httpx.Client]:
    with shared_server.client() as c:
        yield c


# ------------------------------------------------------------------------------------ media
def scene(size: tuple[int, int] = (72, 96), seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame, plate, true alpha): a smooth textured plate and a flat-coloured disc in front of it."""
    h, w = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    plate = np.stack(
        [96 + 60 * np.sin(xx / 7), 110 + 50 * np.cos(yy / 9), 120 + 40 * np.sin((xx + yy) / 11)], axis=2
    ).astype(np.float32)
    alpha = (((xx - w * 0.5) ** 2 + (yy - h * 0.55) ** 2) < (min(h, w) * 0.3) ** 2).astype(np.float32)
    subject = np.array([230, 40, 200], np.float32)
    frame = plate * (1 - alpha[..., None]) + subject * alpha[..., None]
    frame += rng.normal(0, 1.5, frame.shape)
    as8 = lambda a: np.clip(np.rint(a), 0, 255).astype(np.uint8)  # noqa: E731
    return as8(frame), as8(plate), alpha


def encode(array: np.ndarray, fmt: str = "PNG", **options: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **options)
    return buf.getvalue()


@pytest.fixture(scope="session")
def pair() -> tuple[bytes, bytes]:
    """A small (frame, plate) pair as PNG bytes."""
    frame, plate, _ = scene()
    return encode(frame), encode(plate)


def files(frame: bytes, plate: bytes, **more: bytes) -> dict[str, tuple[str, bytes, str]]:
    out = {"image": ("frame.png", frame, "image/png"), "plate": ("plate.png", plate, "image/png")}
    out.update({name: (f"{name}.png", data, "image/png") for name, data in more.items()})
    return out


def write_clip(
    path: Path, n: int = 12, size: tuple[int, int] = (72, 96), fps: int = 12, codec: str = "libx264"
) -> Path:
    """A small H.264 clip: the disc of :func:`scene` moving across the plate; returns ``path``."""
    import av

    h, w = size
    _, plate, _ = scene(size)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i in range(n):
            frame = plate.copy()
            cx = int(w * (0.2 + 0.6 * i / max(1, n - 1)))
            yy, xx = np.mgrid[0:h, 0:w]
            frame[((xx - cx) ** 2 + (yy - h // 2) ** 2) < (h // 4) ** 2] = (230, 40, 200)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def assert_problem(response: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` (and type ``urn:cleanplate:problem:<kind>``)."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= set(body), body
    assert body["status"] == status
    assert body["detail"] and "\n" not in body["detail"]
    if kind is not None:
        assert body["type"] == f"urn:cleanplate:problem:{kind}", body
    return body


# ------------------------------------------------------------------------------ slow models
class SlowMatter:
    """A real (classical) Matter that takes ``delay`` seconds longer per call: work that overlaps."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.device, self.info = inner.device, inner.info

    def matte(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self.delay)
        return self.inner.matte(*args, **kwargs)

    def matte_tensor(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self.delay)
        return self.inner.matte_tensor(*args, **kwargs)


def slow_loader(delay: float) -> Callable[..., Any]:
    """A ``create_app(loader=...)`` that loads the real model and slows every call down."""
    from cleanplate.serve import adapter

    return lambda model, **kwargs: SlowMatter(adapter.load_model(model, **kwargs), delay)
