"""Server settings and limits: one frozen object, built by the CLI or by tests, read by the app.

The limits are the server's safety net against careless and hostile clients alike: every
upload is bounded in bytes, every image in pixels (read from the header, before decoding), every
video in duration and pixels, and the amount of queued work is bounded, so memory and disk use
stay predictable whatever arrives.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Configurable bounds; the defaults suit a workstation serving a few people."""

    max_upload_bytes: int = 256 * MB  # whole request body (all files together)
    max_image_pixels: int = 40_000_000  # per image, from its header (8K is 33 Mpx)
    max_video_seconds: float = 600.0  # per clip (input or plate clip)
    max_video_pixels: int = 3840 * 2160  # per frame of a clip
    max_fields: int = 24  # multipart parts per request
    max_field_bytes: int = 4096  # a text field (options are short)
    workers: int = 2  # request threads: one decodes/encodes while the other holds the model
    queue_size: int = 4  # image requests waiting beyond the running ones; more → 429
    max_video_jobs: int = 8  # video jobs queued or running; more → 429
    job_ttl_seconds: float = 3600.0  # a finished job's files are removed this long after it ends
    shutdown_grace_seconds: float = 10.0  # a running video job gets this long to finish on shutdown
    model_cache: int = 4  # distinct refine-option combinations kept loaded

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_image_pixels", "max_video_pixels", "max_fields", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("queue_size", "max_video_seconds", "job_ttl_seconds", "shutdown_grace_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_video_jobs < 1 or self.model_cache < 1:
            raise ValueError("max_video_jobs and model_cache must be at least 1")


@dataclass(frozen=True)
class ServeConfig:
    """Everything :func:`cleanplate.serve.create_app` needs."""

    model: str | None = None  # checkpoint path or built-in name; None → the built-in default
    device: str = "auto"
    token: str | None = None  # when set, every /v1 call needs ``Authorization: Bearer <token>``
    state_dir: Path = field(default_factory=lambda: default_state_dir())
    limits: Limits = field(default_factory=Limits)
    refine: dict = field(default_factory=dict)  # server-wide refine options (as cleanplate.load takes them)


def default_state_dir() -> Path:
    """Where jobs (SQLite + files) live unless ``--state-dir`` says otherwise: the user's cache."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cleanplate" / "serve"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, 'localhost').

    Any other name counts as reachable from outside: resolving it here could give a different
    answer than the one the socket binds to, so names are not trusted.
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
