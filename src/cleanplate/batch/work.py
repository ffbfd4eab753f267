"""The core: one work item (or one video segment) in, its files out. No Ray, no ledger.

Why a plain function: the local runner calls it in-process, the Ray image actor and the video
tasks call the very same code on workers, so both paths produce the same bytes. It raises on
failure; callers turn the exception into the item's one-line reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from .adapter import (
    PRESETS,
    CleanplateError,
    OutputSpec,
    image_background,
    matte_image,
    process_video,
    read_plate_image,
    save_matte,
    video_options,
)
from .jobs import Output, WorkItem
from .ledger import describe_output
from .segments import Segment

# Test hooks (environment, read on every item so a Ray worker sees what the driver set):
#   CLEANPLATE_BATCH_TEST_EXIT=ITEM_ID=MARKER  hard-exit the process (os._exit) right after ITEM_ID's
#                                               first output is written, once (MARKER records it)
#   CLEANPLATE_BATCH_TEST_SLEEP=SECONDS        sleep before every item (interrupt tests)
EXIT_HOOK = "CLEANPLATE_BATCH_TEST_EXIT"
SLEEP_HOOK = "CLEANPLATE_BATCH_TEST_SLEEP"


def reason(exc: BaseException) -> str:
    """The one-line reason reported for a failed item."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, CleanplateError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_permanent(exc: BaseException) -> bool:
    """Input problems (corrupt file, wrong plate) fail the same way every time: not worth a retry."""
    return isinstance(exc, CleanplateError)


def _hook_sleep() -> None:
    seconds = os.environ.get(SLEEP_HOOK)
    if seconds:
        time.sleep(float(seconds))


def _hook_exit(item: WorkItem) -> None:
    spec = os.environ.get(EXIT_HOOK)
    if not spec:
        return
    item_id, _, marker = spec.partition("=")
    if item_id == item.id and marker and not os.path.exists(marker):
        Path(marker).write_text("exited\n")
        os._exit(3)


@lru_cache(maxsize=4)
def _plate(path: Path, mtime_ns: int) -> Any:
    return read_plate_image(path)


def _plate_for(item: WorkItem) -> Any:
    """A shared plate is decoded once per process, not once per item."""
    if item.plate is None:
        return None
    return _plate(item.plate, item.plate.stat().st_mtime_ns)


def run_image(matter: Any, item: WorkItem) -> list[dict[str, Any]]:
    """Matte one image and write each requested output atomically; returns the ledger's output records."""
    _hook_sleep()
    matte = matte_image(matter, item.input, _plate_for(item), align=bool(item.option("align", False)))
    background = None
    if any(o.kind == "comp" for o in item.outputs):
        background = image_background(item.option("background"))
    records = []
    for out in item.outputs:
        save_matte(matte, out.path, out.kind, background)
        _hook_exit(item)
        records.append(describe_output(out.path))
    return records


def _specs(outputs: list[Output]) -> list[Any]:
    return [OutputSpec(o.kind, o.path, PRESETS[o.preset or ""], o.pattern) for o in outputs]


def _video(
    matter: Any, item: WorkItem, outputs: list[Output], start: float | None, end: float | None, audio: bool
) -> int:
    device = str(getattr(matter, "device", "cpu"))
    options = video_options(
        start=start,
        end=end,
        batch_size=4 if device.startswith("cuda") else 1,
        background=item.option("background"),
        align=bool(item.option("align", False)),
        match_color=bool(item.option("match_color", False)),
        smooth=float(item.option("smooth", 0.0)),
        audio=audio,
        force=True,  # the pre-flight decided what may be replaced
        progress=False,
    )
    try:
        result = process_video(
            matter, item.input, _specs(outputs), item.plate, plate_frames=item.plate_frames, options=options
        )
    except BaseException as exc:
        # The pipeline keeps a playable NAME.partial file of what it did; the batch redoes the item
        # from its start (or segment), so that file would only pile up as NAME.partial-2, -3, ...
        partial = getattr(exc, "partial", None) or getattr(exc, "result", None)
        for path in getattr(partial, "outputs", []) or []:
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if Path(path).is_dir() else Path(path).unlink()
        raise
    return int(result.frames)


def run_video(matter: Any, item: WorkItem) -> list[dict[str, Any]]:
    """Matte a whole video in one pass (the local path, and videos that cannot be split)."""
    _hook_sleep()
    _video(matter, item, item.outputs, item.option("start"), item.option("end"), bool(item.option("audio", True)))
    _hook_exit(item)
    return [describe_output(o.path) for o in item.outputs]


def run_segment(matter: Any, item: WorkItem, segment: Segment, outputs: list[Output]) -> tuple[int, list[dict]]:
    """Matte frames [segment.start, segment.end) into the segment's files (no audio: added at the stitch)."""
    _hook_sleep()
    for o in outputs:
        o.path.parent.mkdir(parents=True, exist_ok=True)
    frames = _video(matter, item, outputs, segment.start, segment.end, audio=False)
    if frames != segment.frames:
        from .adapter import OutputError

        raise OutputError(f"segment {segment.index} decoded {frames} frames, expected {segment.frames}")
    return frames, [describe_output(o.path) for o in outputs]


def run_item(matter: Any, item: WorkItem) -> list[dict[str, Any]]:
    """One whole item, in this process."""
    if item.media == "image":
        return run_image(matter, item)
    return run_video(matter, item)
