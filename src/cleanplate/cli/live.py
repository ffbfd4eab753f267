"""``cleanplate live``: camera → matte → preview window, virtual camera and/or a recording.

Headless use (CI, servers): give a file as SOURCE, ``--no-preview`` and ``-o FILE``; stop with
``--max-frames N`` or Ctrl-C. Stopping is the normal end of a live session, so Ctrl-C closes the
recording properly under its final name and exits 0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from ..errors import InputError
from .options import (
    force_option,
    frame_range,
    keep_shadow_value,
    load_matter,
    matte_control_options,
    matte_controls,
    matting_options,
    plate_frames_option,
    smooth_option,
)


def parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if m is None:
        raise click.BadParameter(f"{text!r}: use WIDTHxHEIGHT, e.g. 1280x720", param_hint="'--size'")
    return int(m.group(1)), int(m.group(2))


@click.command("live")
@click.argument("source", default="0", metavar="[SOURCE]")
@click.option(
    "--plate",
    "-p",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Clean plate image (skips the capture countdown).",
)
@click.option(
    "--plate-delay",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Countdown in seconds before the plate is captured (step out of the picture).",
)
@plate_frames_option("Capture the plate from frames A..B-1 after the countdown (temporal median).", default="0:5")
@click.option(
    "--background",
    "-b",
    "backgrounds",
    multiple=True,
    metavar="blur|COLOR|IMAGE|VIDEO",
    help="Background; repeat to have several ('b' cycles them in the preview). [default: blur]",
)
@click.option(
    "--preview/--no-preview",
    default=None,
    help="Preview window (needs a display and opencv-python with GUI). [default: when a display exists]",
)
@click.option(
    "--vcam",
    "vcam",
    is_flag=False,
    flag_value="auto",
    default=None,
    metavar="[DEVICE]",
    help="Send to a virtual camera (pyvirtualcam; v4l2loopback on Linux), optionally a /dev/videoN.",
)
@click.option("--output", "-o", "outputs", multiple=True, metavar="[KIND=]PATH", help="Record to a file (comp/rgba).")
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after N matted frames.")
@click.option("--size", "size_text", default=None, metavar="WxH", help="Camera resolution to request.")
@click.option("--fps", type=click.FloatRange(min=1), default=None, help="Camera frame rate to request.")
@click.option("--input-format", default=None, help="Camera pixel format to request, e.g. mjpeg.")
@click.option("--realtime", is_flag=True, help="File sources: play at the file's own speed, like a camera.")
@click.option("--no-fps", is_flag=True, help="Hide the fps counter on the preview.")
@click.option("--align", is_flag=True, help="Handheld/drifting camera: align the plate to every frame.")
@click.option("--match-color", is_flag=True, help="Follow the camera's exposure / white-balance drift.")
@smooth_option
@matte_control_options
@click.option("--quiet", "-q", is_flag=True, help="No summary line.")
@matting_options
@force_option
def command(
    source: str,
    plate: Path | None,
    plate_delay: float,
    plate_frames: str,
    backgrounds: tuple[str, ...],
    preview: bool | None,
    vcam: str | None,
    outputs: tuple[str, ...],
    max_frames: int | None,
    size_text: str | None,
    fps: float | None,
    input_format: str | None,
    realtime: bool,
    no_fps: bool,
    align: bool,
    match_color: bool,
    smooth: float,
    quiet: bool,
    force: bool,
    **model_params: Any,
) -> None:
    """Live matting from SOURCE: a camera (0, /dev/video0), 'cv2:SPEC' for OpenCV, a URL, or a video file.

    \b
    Keys in the preview window: p re-capture the plate, b next background, q or Esc quit.
    Headless: kill -USR1 <pid> re-captures the plate; Ctrl-C stops.
    \b
    Examples:
      cleanplate live 0 -b beach.jpg --vcam                       # webcam → virtual camera
      cleanplate live take.mp4 --no-preview -o comp=out.mp4 --plate-delay 0 --max-frames 100
    """
    from ..io.formats import parse_output
    from ..live import FileSink, LiveOptions, LiveSession, PreviewWindow, VirtualCamera, display_available
    from ..live.sources import open_source

    if plate is not None and str(plate) == "auto":
        raise InputError("--plate auto needs a whole clip (cleanplate video INPUT --plate auto); live captures one")
    controls = matte_controls(model_params)
    keep_shadow = keep_shadow_value(model_params)
    first_plate_frame, end_plate_frame = frame_range(plate_frames)
    if end_plate_frame is None:
        raise InputError(f"--plate-frames {plate_frames}: give the end too (A:B, frames after the countdown)")
    specs = [parse_output(text) for text in outputs]
    for spec in specs:
        if spec.kind not in ("comp", "rgba", "alpha", "fgr", "shadow"):
            raise InputError(f"cannot record {spec.kind}")
    want_preview = display_available() if preview is None else preview
    if not want_preview and vcam is None and not specs:
        raise click.UsageError("nothing to show: no preview (no display) — add --vcam or -o FILE")
    from ..io.video_writer import check_writable

    for spec in specs:
        check_writable(spec, force)
    background_specs = list(backgrounds) or ["blur"]
    plate_image = None
    if plate is not None:
        from ..io.image import read_image

        plate_image = read_image(plate)
    frame_source = open_source(
        source, size=parse_size(size_text), fps=fps, input_format=input_format, realtime=realtime
    )
    try:
        first = frame_source.read()
        if first is None:
            raise InputError(f"{source}: no frames")
        height, width = first[0].shape[:2]
        for name in ("garbage", "holdout"):  # a mask of another aspect fails now, not at the first frame
            if getattr(controls, name) is not None:
                from ..pipeline.controls import read_mask

                read_mask(getattr(controls, name), (height, width), name)
        for spec in background_specs:  # bad backgrounds fail now, not at the first 'b'
            from ..pipeline.background import Background

            Background(spec, (height, width))
        if plate_image is not None and not align:  # with --align a plate of another framing is warped instead
            from ..plate.fit import match_plate

            plate_image = match_plate(plate_image, (height, width))
        matter = load_matter(model_params)
        window = PreviewWindow() if want_preview else None
        camera = None
        if vcam is not None:
            camera = VirtualCamera(width, height, fps or 30.0, device=None if vcam == "auto" else vcam)
        files = [FileSink(spec, force=force) for spec in specs]
        options = LiveOptions(
            plate_delay=plate_delay,
            plate_frames=end_plate_frame - first_plate_frame,
            plate_skip=first_plate_frame,
            backgrounds=background_specs,
            show_fps=not no_fps,
            max_frames=max_frames,
            smooth=smooth,
            match_color=match_color,
            align=align,
            controls=controls,
            keep_shadow=keep_shadow,
            shadow=any(spec.kind == "shadow" for spec in specs),
        )
        session = LiveSession(
            matter,
            _Prepend(frame_source, first),
            preview=window,
            vcam=camera,
            files=files,
            plate=plate_image,
            options=options,
        )
        if not quiet and camera is not None:
            click.echo(f"cleanplate: virtual camera on {camera.device}", err=True)
        stats = session.run()
    finally:
        frame_source.close()
    if not quiet:
        how = "stopped (Ctrl-C)" if stats.interrupted else "done"
        saved = f"; recorded {', '.join(map(str, stats.outputs))}" if stats.outputs else ""
        click.echo(f"cleanplate: live {how}: {stats.frames} frames matted ({stats.fps:.1f} fps){saved}", err=True)


class _Prepend:
    """A source that replays one already-read frame first (the one used to learn the size)."""

    def __init__(self, source: Any, first: tuple) -> None:
        self._source, self._first = source, first
        self.live = getattr(source, "live", True)

    def read(self):
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return self._source.read()

    def close(self) -> None:
        self._source.close()
