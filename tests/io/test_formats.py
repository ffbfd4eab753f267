"""Output kinds and presets chosen from paths, --save lists and --format."""

from __future__ import annotations

from pathlib import Path

import pytest

from cleanplate.errors import InputError, MissingDependencyError
from cleanplate.io import formats
from cleanplate.io.formats import PRESETS, FormatPreset, parse_output, parse_save, sequence_regex


@pytest.mark.parametrize(
    ("text", "kind", "preset"),
    [
        ("out.mov", "rgba", "prores4444"),
        ("out.webm", "rgba", "vp9"),
        ("out.mkv", "rgba", "ffv1"),
        ("out.mp4", "comp", "h264"),
        ("alpha=matte.mp4", "alpha", "h264"),
        ("alpha=matte.mov", "alpha", "prores"),
        ("comp=out.mov", "comp", "prores"),
        ("fgr=out.webm", "fgr", "vp9"),
        ("frames/", "rgba", "png"),
        ("alpha=frames/%04d.png", "alpha", "png"),
    ],
)
def test_kind_and_preset_from_path(text: str, kind: str, preset: str) -> None:
    spec = parse_output(text)
    assert (spec.kind, spec.preset.name) == (kind, preset)


def test_sequence_folder_and_pattern() -> None:
    folder = parse_output("out/frames")
    assert folder.is_sequence and folder.path == Path("out/frames") and folder.pattern == "%06d.png"
    pattern = parse_output("rgba=out/shot_%04d.png")
    assert pattern.path == Path("out") and pattern.pattern == "shot_%04d.png"
    regex = sequence_regex("shot_%04d.png")
    assert regex.match("shot_0012.png") and not regex.match("shot_12.png") and not regex.match("other_0012.png")


def test_format_overrides_extension_default() -> None:
    assert parse_output("out.mp4", "h265").preset.name == "h265"
    assert parse_output("rgba=out.mov", "prores4444").preset.codec == "prores"


def test_save_list() -> None:
    specs = parse_save("comp=out.mp4, rgba=out.mov,alpha=matte.mp4")
    assert [(s.kind, s.path.name) for s in specs] == [("comp", "out.mp4"), ("rgba", "out.mov"), ("alpha", "matte.mp4")]


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("rgba=out.mp4", None, "cannot carry alpha"),
        ("out.avi", None, "unknown output type"),
        ("out.png", None, "folder"),
        ("colour=out.mp4", None, "unknown output kind"),
        ("out.mp4", "vp9", "writes .webm"),
        ("rgba=out.mov", "prores", "cannot hold rgba"),
        ("out/%d_%d.png", None, "exactly one %d"),
        ("frames/", "h264", "only holds PNG"),
        ("out.mp4", "nope", "unknown format"),
    ],
)
def test_bad_outputs_say_why(text: str, fmt: str | None, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_output(text, fmt)


def test_missing_encoder_is_one_clear_error() -> None:
    fake = FormatPreset("fake", "mp4", "no-such-encoder", {3: "yuv420p"})
    with pytest.raises(MissingDependencyError, match="no no-such-encoder encoder"):
        formats.check_encoder(fake)


def test_every_preset_encoder_exists_in_this_build() -> None:
    # If PyAV's FFmpeg loses an encoder (e.g. libvpx), this names it instead of failing mid-run.
    for preset in PRESETS.values():
        formats.check_encoder(preset)


def test_matte_options_only_for_alpha() -> None:
    h264 = PRESETS["h264"]
    assert h264.options_for("alpha")["crf"] != h264.options_for("comp")["crf"]
