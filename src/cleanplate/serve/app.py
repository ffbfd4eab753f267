"""The FastAPI application: :func:`create_app` builds everything a server owns, eagerly.

Eagerly, because every mistake that can be found before serving (the model does not load, the
state folder is used by another server) should stop ``cleanplate serve`` with one line, not
surface as a failed startup hook in the server log. The lifespan only starts the sweeper that
removes expired job files, and on shutdown lets running work finish (or marks it interrupted).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from . import adapter, problems
from .config import ServeConfig
from .jobs import JobStore, VideoJobs
from .uploads import decode_image, remove_tree
from .workers import InferencePool, ModelHost

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("cleanplate.serve")

# The browser app loads nothing from elsewhere; the policy makes that a rule, not a habit.
APP_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)


class StateDirBusy(adapter.CleanplateError):
    """Another server already uses this state folder (two would overwrite each other's jobs)."""


class Server:
    """What one running server owns: model host, inference pool, job store and runner, folders."""

    def __init__(self, config: ServeConfig, loader: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.limits = limits = config.limits
        state = Path(config.state_dir)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = _lock(state / "server.lock")
        try:
            self.tmp = _fresh_private(state / "tmp")  # leftovers of a crashed run go first
            self.jobs_root = state / "jobs"
            self.jobs_root.mkdir(exist_ok=True, mode=0o700)
            os.chmod(self.jobs_root, 0o700)
            self.host = ModelHost(
                config.model, device=config.device, refine=config.refine, cache=limits.model_cache, loader=loader
            )
            self.pool = InferencePool(limits.workers, limits.queue_size)
            self.store = JobStore(state / "jobs.sqlite3", ttl=limits.job_ttl_seconds)
            self.videos = VideoJobs(
                self.store,
                self.jobs_root,
                self.host.get,
                max_jobs=limits.max_video_jobs,
                ttl=limits.job_ttl_seconds,
                decode_plate=lambda path: self.decode_path(path, "plate"),
            )
            self.videos.remove_orphans()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._closed = False

    def decode_path(self, path: Path, field: str) -> Any:
        from .uploads import Upload

        return adapter.pil_to_rgb(decode_image(Upload(field, path), self.limits.max_image_pixels))

    def close(self) -> None:
        """Finish or mark running work, then release the state folder (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.pool.shutdown()
        self.videos.shutdown(self.limits.shutdown_grace_seconds)
        self.store.close()
        remove_tree(self.tmp)
        os.close(self._lock_fd)


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateDirBusy(f"another cleanplate server uses {path.parent}; stop it or pass --state-dir DIR") from None
    return fd


def _fresh_private(path: Path) -> Path:
    remove_tree(path)
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def create_app(config: ServeConfig | None = None, *, loader: Callable[..., Any] | None = None) -> FastAPI:
    """Build the app. ``loader`` replaces ``cleanplate.load`` (tests use it to inject slow models)."""
    from .routes import router

    server = Server(config or ServeConfig(), loader=loader)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep_forever(server))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await asyncio.to_thread(server.close)

    app = FastAPI(
        title="cleanplate",
        version=adapter.VERSION,
        summary="Background matting with a clean plate: images and video.",
        description=(
            "Send a photo (or a clip) and its clean plate, get the alpha matte, the subject with alpha, "
            "or a composite. Errors are RFC 9457 problem+json bodies. With a token configured, every /v1 "
            "call needs `Authorization: Bearer <token>`."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from the package, not from a CDN: the server works offline
        redoc_url=None,
    )
    app.state.server = server
    problems.install(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_docs(app)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_middleware(SecurityHeaders)
    return app


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` with its script and style from the ``swagger-ui-bundle`` wheel.

    FastAPI's own page pulls them from a CDN, which a machine without internet access (a render
    node, a studio network) cannot reach. Without the wheel, ``/docs`` says how to get it and the
    schema stays at ``/openapi.json``.
    """
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    if swagger_ui_path is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse(
                "<p>The API page needs the swagger-ui-bundle package (pip install 'cleanplate[serve]'); "
                'the schema is at <a href="/openapi.json">/openapi.json</a>.</p>',
                status_code=501,
            )
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="cleanplate API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/static/favicon.ico" if (STATIC / "favicon.ico").is_file() else "data:,",
        )


class SecurityHeaders:
    """Pure ASGI middleware (no request buffering): safe headers on every response, CSP on the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        page = path == "/" or path.startswith("/static/")

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
                if page:
                    headers.append((b"content-security-policy", APP_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _sweep_forever(server: Server) -> None:
    """Remove expired job files now and then (and once at startup)."""
    interval = max(1.0, min(60.0, server.limits.job_ttl_seconds / 4))
    while True:
        try:
            await asyncio.to_thread(server.videos.sweep)
        except Exception:  # a sweep failing must not stop the server; it is retried
            log.exception("sweeping expired jobs failed")
        await asyncio.sleep(interval)
