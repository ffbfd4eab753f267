"""Writers: alpha survives each codec (stated tolerances), timestamps and audio are kept, files are
written atomically, and an aborted run leaves a valid, playable ``.partial`` file."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from cleanplate.errors import OutputError
from cleanplate.io.formats import parse_output
from cleanplate.io.video_reader import probe
from cleanplate.io.video_writer import AudioSource, open_writer, partial_path
from tests.clips import audio_seconds, decode_all

# Max |decoded - written| alpha (0..255) per preset, on a GT matte with soft edges.
ALPHA_TOL = {"prores4444": 1, "ffv1": 0, "png": 0, "vp9": 12, "h264": 12}
AAC_FRAME_S = 1024 / 44100  # one audio frame: the tolerance on durations


def _alphas(clip) -> list[np.ndarray]:
    return [np.rint(a * 255).astype(np.uint8) for a in clip.alphas]


def _write(spec_text: str, clip, *, audio: bool = False, force: bool = False, n: int | None = None):
    spec = parse_output(spec_text)
    source = AudioSource(clip.path) if audio else None
    writer = open_writer(spec, time_base=clip.time_base, rate=Fraction(12), audio=source, force=force)
    for i, (frame, alpha) in enumerate(zip(clip.frames, _alphas(clip), strict=True)):
        if n is not None and i >= n:
            break
        image = {"rgba": np.dstack([frame, alpha]), "alpha": alpha[..., None], "comp": frame}[spec.kind]
        writer.write(image, clip.pts[i])
    return writer


def _decoded_alpha(path: Path, kind: str) -> np.ndarray:
    if path.is_dir():
        files = sorted(path.glob("*.png"))
        return np.stack([cv2.imread(str(f), cv2.IMREAD_UNCHANGED)[..., 3 if kind == "rgba" else ...] for f in files])
    frames = decode_all(path, alpha=kind == "rgba")
    return np.stack([f.image[..., 3] if kind == "rgba" else f.image[..., 0] for f in frames])


@pytest.mark.parametrize(
    ("text", "preset"),
    [
        ("rgba=out.mov", "prores4444"),
        ("rgba=out.webm", "vp9"),
        ("rgba=out.mkv", "ffv1"),
        ("rgba=frames/", "png"),
        ("alpha=matte.mp4", "h264"),
        ("alpha=matte.mkv", "ffv1"),
    ],
)
def test_alpha_round_trip(clip_factory, tmp_path: Path, text: str, preset: str) -> None:
    clip = clip_factory(n=6)
    kind, _, name = text.partition("=")
    writer = _write(f"{kind}={tmp_path / name}", clip)
    final = writer.finish()
    assert final is not None and final.exists()
    got = _decoded_alpha(final, kind).astype(int)
    want = np.stack(_alphas(clip)).astype(int)
    assert got.shape == want.shape
    err = np.abs(got - want).max()
    assert err <= ALPHA_TOL[preset], f"{preset}: max alpha error {err}/255"


@pytest.mark.parametrize("text", ["rgba=out.mov", "rgba=out.mkv", "rgba=out.webm", "comp=out.mp4"])
def test_vfr_timestamps_survive(clip_factory, tmp_path: Path, text: str) -> None:
    pts = [0, 400, 500, 1300, 1350, 2000]
    clip = clip_factory("vfr.mkv", n=len(pts), pts=pts, time_base=Fraction(1, 1000))
    kind, _, name = text.partition("=")
    path = _write(f"{kind}={tmp_path / name}", clip).finish()
    assert [round(f.time * 1000) for f in decode_all(path)] == pts


def test_audio_copied_into_mov_and_reencoded_into_webm(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=12, audio=True)
    source_audio = audio_seconds(clip.path)
    mov = _write(f"rgba={tmp_path / 'a.mov'}", clip, audio=True)
    webm = _write(f"rgba={tmp_path / 'a.webm'}", clip, audio=True)
    assert mov.finish() and webm.finish()
    assert mov.audio_mode == "copy" and webm.audio_mode == "libopus"
    assert probe(tmp_path / "a.mov").audio_codec == "aac" and probe(tmp_path / "a.webm").audio_codec == "opus"
    for name in ("a.mov", "a.webm"):
        got = audio_seconds(tmp_path / name)
        assert abs(got - source_audio) <= AAC_FRAME_S, f"{name}: {got:.4f}s vs {source_audio:.4f}s"


def test_existing_output_needs_force(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=2)
    target = tmp_path / "out.mov"
    target.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        _write(f"rgba={target}", clip)
    assert target.read_bytes() == b"precious"
    _write(f"rgba={target}", clip, force=True).finish()
    assert len(decode_all(target)) == 2


def test_unwritable_folder(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=2)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that can write anywhere (root)")
        with pytest.raises(OutputError, match="not writable"):
            _write(f"rgba={locked / 'out.mov'}", clip)
    finally:
        locked.chmod(0o700)


def test_folder_blocked_by_a_file(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=2)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        _write(f"rgba={tmp_path / 'afile' / 'out.mov'}", clip)


def test_no_file_under_final_name_while_writing(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=4)
    writer = _write(f"rgba={tmp_path / 'out.mov'}", clip, n=2)
    # The encoder may still hold both frames (frame threads), so the temp file itself may not exist
    # yet; what must hold is that nothing exists under the final name, and that the temp name is
    # hidden, beside the target (same file system, so the final rename is atomic).
    before = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert "out.mov" not in before
    assert writer.tmp.name.startswith(".out.tmp-") and writer.tmp.parent == tmp_path
    assert writer.finish() == tmp_path / "out.mov"
    assert {p.name for p in tmp_path.iterdir()} == before | {"out.mov"}
    assert len(decode_all(tmp_path / "out.mov")) == 2


@pytest.mark.parametrize("name", ["out.mov", "out.webm", "comp=out.mp4"])
def test_abort_keeps_a_playable_partial_file(clip_factory, tmp_path: Path, name: str) -> None:
    clip = clip_factory(n=10, audio=True)
    text = name if "=" in name else f"rgba={name}"
    kind, _, file = text.partition("=")
    writer = _write(f"{kind}={tmp_path / file}", clip, audio=True, n=4)
    kept = writer.abort()
    stem, suffix = os.path.splitext(file)
    assert kept == tmp_path / f"{stem}.partial{suffix}"
    assert not (tmp_path / file).exists(), "a partial result must not sit under the final name"
    assert not list(tmp_path.glob(".*tmp*")), "temp file left behind"
    frames = decode_all(kept)
    assert len(frames) == 4
    assert audio_seconds(kept) is not None  # the audio of the frames done is there too


def test_abort_of_a_png_sequence_keeps_the_staging_folder(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=6)
    writer = _write(f"rgba={tmp_path / 'frames'}", clip, n=3)
    kept = writer.abort()
    assert kept == tmp_path / "frames.partial"
    assert sorted(p.name for p in kept.iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert not (tmp_path / "frames").exists()


def test_partial_names_never_clobber(tmp_path: Path) -> None:
    final = tmp_path / "out.mov"
    (tmp_path / "out.partial.mov").write_bytes(b"older run")
    assert partial_path(final) == tmp_path / "out.partial-2.mov"


def test_sequence_refuses_existing_frames_and_force_clears_stale_ones(clip_factory, tmp_path: Path) -> None:
    clip = clip_factory(n=3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):  # an earlier, longer run
        (folder / f"{i:06d}.png").write_bytes(b"old")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="already holds"):
        _write(f"rgba={folder}", clip)
    _write(f"rgba={folder}", clip, force=True).finish()
    assert sorted(p.name for p in folder.iterdir()) == ["000000.png", "000001.png", "000002.png", "notes.txt"]


def test_odd_sizes_are_padded_for_420_codecs(tmp_path: Path) -> None:
    spec = parse_output(f"comp={tmp_path / 'odd.mp4'}")
    writer = open_writer(spec, time_base=Fraction(1, 10))
    for i in range(2):
        writer.write(np.full((45, 61, 3), 100, np.uint8), i)
    writer.finish()
    info = probe(tmp_path / "odd.mp4")
    assert (info.width, info.height) == (62, 46)
