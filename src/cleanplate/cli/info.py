"""``cleanplate info CHECKPOINT``: what a checkpoint holds, without running it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return str(n)


def _short(value: Any, width: int = 70) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


def describe(info: dict[str, Any]) -> list[str]:
    """Human-readable lines for an :func:`inspect_checkpoint` dict."""
    from ..models.checkpoint import OWN_ARCHITECTURES

    fmt = info["format"]
    if fmt == "cleanplate":
        fmt = f"cleanplate (format version {info['format_version']})"
    elif fmt == "official":
        fmt = "official BGMv2 state dict"
    compatible = "yes" if info["official_compatible"] else "no"
    if info["architecture"] in OWN_ARCHITECTURES:
        compatible += " (a cleanplate architecture: the original BGMv2 code cannot load it)"
    elif not info["official_compatible"] and info["format"] == "cleanplate":
        compatible += " (cleanplate wrapper; the weights inside use the official layout)"
    rows = [
        ("file", f"{info['path']} ({_size(info['bytes'])})"),
        ("format", fmt),
        ("architecture", info["architecture"]),
        ("backbone", info["backbone"]),
        ("parameters", f"{info['parameters']:,}"),
        ("tensors", f"{info['tensors']} ({info['dtype']})"),
        ("official-compatible", compatible),
    ]
    meta = info.get("meta") or {}
    rows.append(("meta", "" if meta else "(none)"))
    lines = [f"{k + ':':21}{v}".rstrip() for k, v in rows]
    lines += [f"  {k}: {_short(v)}" for k, v in meta.items()]
    return lines


@click.command("info")
@click.argument("checkpoint", metavar="CHECKPOINT")
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def command(checkpoint: str, as_json: bool) -> None:
    """Describe CHECKPOINT: backbone, architecture, parameters, format, official compatibility.

    CHECKPOINT is a file, or 'default' for the built-in model's weights.
    """
    from ..models.checkpoint import inspect_checkpoint
    from ..models.registry import checkpoint_path, is_builtin, model_config

    if not Path(checkpoint).exists() and is_builtin(checkpoint) and model_config(checkpoint).weights is None:
        click.echo(f"{checkpoint}: built-in model without weights (no checkpoint to describe)")
        return
    info = inspect_checkpoint(checkpoint_path(checkpoint))
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
    else:
        click.echo("\n".join(describe(info)))
