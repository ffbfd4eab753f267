"""``cleanplate serve``: the HTTP API and the browser app, on uvicorn.

Everything that can go wrong at startup is checked before serving and reported as one line with
exit status 2: a non-loopback address without a token, a port already in use, a model that does
not load, a state folder another server is using. The socket is bound here and handed to
uvicorn, so "port in use" is our message, not a traceback in a log.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import socket
from pathlib import Path

import click

from ..errors import InputError, MissingDependencyError
from .options import backbone_scale_option, model_option, refine_mode_option, sample_pixels_option, threshold_option

DEFAULT_PORT = 7860


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind. Non-loopback needs --token.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True, help="0: any free port."
)
@model_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@backbone_scale_option
@refine_mode_option
@sample_pixels_option
@threshold_option
@click.option(
    "--token",
    envvar="CLEANPLATE_TOKEN",
    default=None,
    help="Require 'Authorization: Bearer TOKEN' on /v1 (also $CLEANPLATE_TOKEN).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Jobs database and files. [default: ~/.cache/cleanplate/serve]",
)
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=256.0, show_default=True)
@click.option("--max-megapixels", type=click.FloatRange(min=0, min_open=True), default=40.0, show_default=True)
@click.option("--max-video-seconds", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Image request threads.")
@click.option("--queue-size", type=click.IntRange(0, 10_000), default=4, show_default=True, help="Waiting requests.")
@click.option("--max-video-jobs", type=click.IntRange(1, 10_000), default=8, show_default=True)
@click.option(
    "--job-ttl", type=click.FloatRange(min=0), default=3600.0, show_default=True, help="Seconds results live."
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
def command(
    host: str,
    port: int,
    model: str | None,
    device: str,
    backbone_scale: float | None,
    refine_mode: str | None,
    sample_pixels: int | None,
    threshold: float | None,
    token: str | None,
    state_dir: Path | None,
    max_upload_mb: float,
    max_megapixels: float,
    max_video_seconds: float,
    workers: int,
    queue_size: int,
    max_video_jobs: int,
    job_ttl: float,
    log_level: str,
) -> None:
    """Serve the HTTP API (/v1, docs at /docs) and the browser app (/)."""
    from ..serve.config import Limits, ServeConfig, default_state_dir, is_loopback
    from .options import refine_kwargs

    if token is not None and not token.strip():
        raise InputError("--token is empty; give a secret string or leave it out")
    if not is_loopback(host) and not token:
        raise InputError(
            f"refusing to serve on {host} without a token: anyone who can reach it could use it; "
            "pass --token (or set CLEANPLATE_TOKEN), or bind 127.0.0.1"
        )
    for module, extra in (("fastapi", "serve"), ("uvicorn", "serve"), ("python_multipart", "serve")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(f"cleanplate serve needs {module}: pip install 'cleanplate[{extra}]'")
    limits = Limits(
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_image_pixels=int(max_megapixels * 1e6),
        max_video_seconds=max_video_seconds,
        workers=workers,
        queue_size=queue_size,
        max_video_jobs=max_video_jobs,
        job_ttl_seconds=job_ttl,
    )
    config = ServeConfig(
        model=model,
        device=device,
        token=token,
        state_dir=state_dir or default_state_dir(),
        limits=limits,
        refine=refine_kwargs(backbone_scale, refine_mode, sample_pixels, threshold),
    )
    sock = bind(host, port)
    try:
        _serve(sock, config, log_level)
    finally:
        sock.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or one clear line about why there is none."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {host} is already in use; pick another with --port") from None
        if exc.errno == errno.EACCES:
            raise InputError(f"not allowed to bind port {port} on {host}; use a port above 1023") from None
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
            raise InputError(f"cannot bind {host}: not an address of this machine") from None
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _serve(sock: socket.socket, config, log_level: str) -> None:  # noqa: ANN001 - ServeConfig, imported lazily
    import uvicorn

    from ..serve.app import create_app

    app = create_app(config)  # loads the model: errors are one line, before anything listens for requests
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    server = app.state.server
    auth = "token required" if config.token else "no token (loopback only)"
    click.echo(
        f"cleanplate serve: http://{shown}:{port}/ (model {server.host.name}, {auth}; API docs at /docs)", err=True
    )
    logging.getLogger("cleanplate.serve").setLevel(log_level.upper())
    uv_config = uvicorn.Config(
        app,
        log_level=log_level,
        timeout_graceful_shutdown=int(config.limits.shutdown_grace_seconds) + 5,
        server_header=False,
    )
    try:
        uvicorn.Server(uv_config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: the normal way to stop
        click.echo("cleanplate serve: stopped", err=True)
    finally:
        server.close()  # normally done by the lifespan already; a no-op then
