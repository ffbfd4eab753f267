"""Split a video at keyframes into segments matted independently, and stitch them back losslessly.

Why at keyframes: a segment then decodes from its own first packet (a seek lands exactly there),
so no frame is decoded twice or skipped. Why only intraframe outputs (ProRes, FFV1, PNG frames):
every output packet is a whole frame, so segments concatenate by remuxing packets (no re-encode,
bit-exact) with timestamps rebased; the source's audio is copied once into the stitched file by
the same carrier the video writer uses. Inter-frame outputs (H.264/H.265/VP9) and video
backgrounds are processed as one piece instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from .adapter import PRESETS, InputError, OutputError, audio_carrier, sequence_regex, temp_path_for
from .jobs import Output, WorkItem

STITCHABLE = ("prores4444", "prores", "ffv1", "png")
SEEK_EPS = 1e-4  # the reader's tolerance: a frame at start - eps counts as "at start"


@dataclass(frozen=True)
class Segment:
    """Frames [start, end) in seconds from the video's first frame (None: the item's own bound)."""

    index: int
    start: float | None
    end: float | None
    first_pts: int  # input pts of the segment's first frame
    frames: int


@dataclass(frozen=True)
class VideoPlan:
    time_base: Fraction
    first_pts: int  # input pts of the item's first frame
    origin: float  # seconds of the stream's first timestamp
    frames: int
    segments: list[Segment]

    @property
    def first_time(self) -> float:
        return float(self.first_pts * self.time_base)


def splittable(item: WorkItem) -> bool:
    """Whether this item's outputs can be cut into segments and stitched back without re-encoding."""
    background = str(item.option("background", ""))
    if background and Path(background).suffix.lower() in (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"):
        return False  # a background video would restart at every segment
    return all(o.preset in STITCHABLE for o in item.outputs)


def plan_segments(item: WorkItem, segment_frames: int) -> VideoPlan:
    """Scan packets (no decoding) and cut the item's frames every ~``segment_frames``, at keyframes."""
    path = item.input
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"{path}: cannot open video ({str(exc).splitlines()[0] if str(exc) else exc})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        tb = stream.time_base or Fraction(1, 1000)
        origin = float((stream.start_time or 0) * tb)
        pts: list[int] = []
        keys: set[int] = set()
        regular = True
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    regular = False
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe:
                    keys.add(packet.pts)
        except av.FFmpegError as exc:
            raise InputError(f"{path}: corrupt video data ({str(exc).splitlines()[0]})") from None
    pts.sort()
    if len(set(pts)) != len(pts):
        regular = False
    start = item.option("start")
    end = item.option("end")
    lo = None if start is None else start + origin - SEEK_EPS
    hi = None if end is None else end + origin - SEEK_EPS
    frames = [p for p in pts if (lo is None or p * tb >= lo) and (hi is None or p * tb < hi)]
    if not frames:
        raise InputError(f"{path}: no frames in the requested range")
    cuts = [0]
    if regular and segment_frames > 0:
        for i in range(1, len(frames)):
            if i - cuts[-1] >= segment_frames and frames[i] in keys:
                cuts.append(i)
    segments = []
    for k, c in enumerate(cuts):
        nxt = cuts[k + 1] if k + 1 < len(cuts) else len(frames)
        seg_start = start if k == 0 else float(frames[c] * tb) - origin
        seg_end = end if k + 1 == len(cuts) else float(frames[nxt] * tb) - origin
        segments.append(Segment(k, seg_start, seg_end, frames[c], nxt - c))
    return VideoPlan(tb, frames[0], origin, len(frames), segments)


def segment_outputs(item: WorkItem, workdir: Path, index: int) -> list[Output]:
    """Where segment ``index`` of each output goes (same preset, under the ledger folder)."""
    outs = []
    for n, o in enumerate(item.outputs):
        name = f"{n}-{o.kind}-{index:05d}"
        path = workdir / name if o.preset == "png" else workdir / f"{name}{o.path.suffix}"
        outs.append(Output(o.kind, path, o.preset, "%06d.png" if o.preset == "png" else None))
    return outs


def stitch(item: WorkItem, plan: VideoPlan, pieces: list[list[Output]], *, audio: bool = True) -> list[Path]:
    """Join the segment files of every output into the item's final outputs (atomic), then return them."""
    done = []
    for n, final in enumerate(item.outputs):
        parts = [seg[n].path for seg in pieces]
        if final.preset == "png":
            done.append(_stitch_frames(final, parts))
        else:
            done.append(_stitch_container(item, plan, final, parts, audio=audio))
    return done


def _stitch_container(item: WorkItem, plan: VideoPlan, final: Output, parts: list[Path], *, audio: bool) -> Path:
    preset = PRESETS[final.preset or ""]
    tmp = temp_path_for(final.path)
    try:
        with av.open(str(tmp), "w", format=preset.container) as out:
            with av.open(str(parts[0])) as first:
                template = first.streams.video[0]
                vout = out.add_stream_from_template(template)
                # mov picks a fourcc from the codec when none is set (ProRes 4444 would become apch)
                vout.codec_tag = template.codec_tag
            carrier = None
            if audio:
                end = item.option("end")
                carrier = audio_carrier(
                    item.input,
                    out,
                    end=None if end is None else end + plan.origin,
                    offset=plan.first_time,
                    reencode=preset.audio_codec,
                )
                if carrier.mode is None:
                    carrier = None
            try:
                for seg, part in zip(plan.segments, parts, strict=True):
                    _remux(out, vout, part, (seg.first_pts - plan.first_pts) * plan.time_base, carrier, seg.frames)
                if carrier is not None:
                    carrier.finish()
            finally:
                if carrier is not None:
                    carrier.close()
        os.replace(tmp, final.path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return final.path


def _remux(out, vout, part: Path, offset: Fraction, carrier, expected: int) -> None:
    """Copy every video packet of ``part`` into ``out``, shifted by ``offset`` seconds."""
    count = 0
    with av.open(str(part)) as inp:
        stream = inp.streams.video[0]
        shift = round(offset / stream.time_base)
        for packet in inp.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            packet.pts += shift
            packet.dts = packet.pts if packet.dts is None else packet.dts + shift
            t = float(packet.pts * stream.time_base)
            packet.stream = vout
            out.mux(packet)
            count += 1
            if carrier is not None:
                carrier.mux_until(t)
    if count != expected:
        raise OutputError(f"segment {part.name} holds {count} frames, expected {expected}")


def _stitch_frames(final: Output, parts: list[Path]) -> Path:
    """PNG frames: renumber each segment's frames into one staging folder, then move them in place."""
    pattern = final.pattern or "%06d.png"
    stage = final.path.with_name(f".{final.path.name}.stitch")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    n = 0
    for part in parts:
        regex = sequence_regex("%06d.png")
        for frame in sorted(p for p in part.iterdir() if regex.match(p.name)):
            os.replace(frame, stage / (pattern % n))
            n += 1
    final.path.mkdir(parents=True, exist_ok=True)
    regex = sequence_regex(pattern)
    written = {pattern % i for i in range(n)}
    for stale in [p for p in final.path.iterdir() if regex.match(p.name) and p.name not in written]:
        stale.unlink()  # frames of an earlier, longer result would corrupt the sequence
    for name in sorted(written):
        os.replace(stage / name, final.path / name)
    shutil.rmtree(stage, ignore_errors=True)
    return final.path
