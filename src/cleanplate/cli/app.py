"""Entry point. Commands are imported lazily so ``cleanplate --version`` and ``--help`` stay fast.

Every command module exposes a click command named ``command``. User mistakes raise
:class:`cleanplate.errors.CleanplateError` (or click's own usage errors) and become one line on
stderr with a non-zero exit; Ctrl-C exits 130 after the command has cleaned up.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import os
import sys

import click

from .._version import __version__

# command name -> module under cleanplate.cli
COMMANDS = {
    "image": "image",
    "info": "info",
    "video": "video",
    "plate": "plate",
    "live": "live",
    "export": "export",
    "bench": "bench",
    "eval": "evaluate",
    "train": "train",
    "serve": "serve",
    "batch": "batch",
}

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, module in COMMANDS.items() if _available(module)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        if module is None or not _available(module):
            return None
        return importlib.import_module(f"{__package__}.{module}").command


def _available(module: str) -> bool:
    return importlib.util.find_spec(f"{__package__}.{module}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cleanplate")
def cli() -> None:
    """Background matting with a clean plate: alpha, foreground and composites."""


# Memory flat in a video's length (benchmarks/video_memory.py). The refiner's patch count changes
# from frame to frame, so every frame allocates tensors of new sizes, and:
# - oneDNN (torch's CPU convolutions) caches one compiled primitive per input shape, 1024 by
#   default: a small cache stops that growth. oneDNN reads the variable when torch first runs a
#   primitive, so it is set before any command imports torch; a value the user set is kept.
# - glibc raises its mmap threshold each time a large block is freed, after which tensors of
#   ever-changing sizes come from the heap and fragment it: a fixed threshold keeps large
#   tensors in their own mappings, returned to the system when freed.
ONEDNN_CACHE = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
ONEDNN_CACHE_SIZE = "8"
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept fixed


def steady_memory() -> None:
    """Set the two limits above for this process (see the comment); harmless where they do not apply."""
    os.environ.setdefault(ONEDNN_CACHE, ONEDNN_CACHE_SIZE)
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (glibc); also stops its dynamic adjustment
    except (OSError, AttributeError):  # not glibc (musl): nothing to do
        pass


def main(argv: list[str] | None = None) -> None:
    """Run the CLI, turning user-facing errors into one line and an exit code."""
    steady_memory()
    from ..errors import CleanplateError

    try:
        cli.main(args=argv, prog_name="cleanplate", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("cleanplate: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("cleanplate: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.UsageError as exc:  # one line, like every other user mistake
        where = exc.ctx.command_path if exc.ctx is not None else "cleanplate"
        click.echo(f"cleanplate: error: {exc.format_message()} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CleanplateError as exc:
        click.echo(f"cleanplate: error: {exc}", err=True)
        sys.exit(EXIT_USER_ERROR)
    except MemoryError:
        click.echo(
            "cleanplate: error: not enough memory (try a smaller input, --batch-size 1 or --backbone-scale)", err=True
        )
        sys.exit(EXIT_USER_ERROR)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            from ..io.atomic import final_path_for

            where = f"cannot write {final_path_for(exc.filename)}: " if exc.filename else ""
            click.echo(f"cleanplate: error: {where}no space left on device", err=True)
            sys.exit(EXIT_USER_ERROR)
        if exc.errno in (errno.EACCES, errno.EROFS, errno.ENOENT, errno.EISDIR, errno.ENOTDIR):
            click.echo(f"cleanplate: error: {exc.strerror}: {exc.filename}", err=True)
            sys.exit(EXIT_USER_ERROR)
        raise
    sys.exit(0)


if __name__ == "__main__":
    main()
