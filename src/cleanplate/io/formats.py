"""Output format presets for video results, and the rules that pick one from a path.

An output has a *kind* (what is written: ``rgba`` foreground with alpha, ``alpha`` matte only,
``comp`` composite over a background, ``fgr`` foreground colour only) and a *preset* (how it is
encoded: codec, pixel format, container). The kind decides which presets can carry it: alpha needs
ProRes 4444, VP9 with alpha, FFV1 or PNG. Presets are data, so ``cleanplate video --format`` and
the README table come from the same place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, MissingDependencyError

KINDS = ("rgba", "alpha", "comp", "fgr", "shadow")
# channels each kind hands to a writer
KIND_CHANNELS = {"rgba": 4, "alpha": 1, "comp": 3, "fgr": 3, "shadow": 1}
MATTE_KINDS = ("alpha", "shadow")  # grey layers: full range, the matte encoder options
SEQUENCE_SUFFIXES = (".png", ".exr")

SEQUENCE_PATTERN = re.compile(r"%0?(\d*)d")
DEFAULT_SEQUENCE_NAME = "%06d.png"


@dataclass(frozen=True)
class FormatPreset:
    """How one output is encoded. ``container`` None means an image sequence (one file per frame).

    ``sample``: what the writer is handed: ``uint8`` frames, or ``float`` (float32 in [0, 1],
    straight alpha) for 16-bit PNG and half-float EXR (premultiplied by the EXR writer).
    """

    name: str
    container: str | None
    codec: str
    pix_fmt: dict[int, str]  # channels (1, 3, 4) -> encoder pixel format; missing = kind not supported
    options: dict[str, str] = field(default_factory=dict)
    audio_codec: str | None = None  # re-encode target when the input's audio cannot be copied
    full_range: bool = False  # encode Y in 0..255 (JPEG range): exact 8-bit mattes through H.264
    matte_options: dict[str, str] = field(default_factory=dict)  # override options for alpha-only output
    description: str = ""
    sample: str = "uint8"
    suffix: str = ".png"  # of the frame files of a sequence

    @property
    def alpha_capable(self) -> bool:
        return 4 in self.pix_fmt

    def pix_fmt_for(self, channels: int) -> str:
        return self.pix_fmt[channels]

    def options_for(self, kind: str) -> dict[str, str]:
        return {**self.options, **self.matte_options} if kind in MATTE_KINDS else dict(self.options)


PRESETS: dict[str, FormatPreset] = {
    p.name: p
    for p in (
        # FFmpeg's "prores" encoder (prores_aw), not prores_ks: same ProRes 4444 with alpha, but
        # measured 3.2x cheaper per 1080p frame (120 vs 391 ms CPU), which decides whether the
        # encoder keeps up with the model on CPU.
        FormatPreset(
            "prores4444",
            "mov",
            "prores",
            {4: "yuva444p10le", 3: "yuv444p10le", 1: "yuv444p10le"},
            {"profile": "4", "vendor": "apl0"},
            audio_codec="aac",
            description="ProRes 4444 .mov with alpha (edit-friendly, large)",
        ),
        FormatPreset(
            "prores",
            "mov",
            "prores",
            {3: "yuv422p10le", 1: "yuv422p10le"},
            {"profile": "3", "vendor": "apl0"},
            audio_codec="aac",
            description="ProRes 422 HQ .mov (no alpha)",
        ),
        FormatPreset(
            "vp9",
            "webm",
            "libvpx-vp9",
            {4: "yuva420p", 3: "yuv420p", 1: "yuv420p"},
            {"crf": "18", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
            audio_codec="libopus",
            description="WebM VP9, with alpha for rgba (browsers, small)",
        ),
        FormatPreset(
            "h264",
            "mp4",
            "libx264",
            {3: "yuv420p", 1: "yuv420p"},
            {"crf": "18", "preset": "veryfast"},  # medium costs 2.4x the CPU (97 vs 41 ms at 1080p)
            audio_codec="aac",
            matte_options={"crf": "10"},  # crf 18 blurs matte edges by up to 45/255; 10 keeps them within ~8
            description="H.264 .mp4 (plays everywhere; mattes: full range, crf 10)",
        ),
        FormatPreset(
            "h265",
            "mp4",
            "libx265",
            {3: "yuv420p", 1: "yuv420p"},
            {"crf": "22", "preset": "fast", "x265-params": "log-level=error"},
            audio_codec="aac",
            matte_options={"crf": "12"},
            description="H.265/HEVC .mp4 (smaller than H.264)",
        ),
        FormatPreset(
            "ffv1",
            "matroska",
            "ffv1",
            {4: "bgra", 3: "bgr0", 1: "gray"},
            {"level": "3", "slicecrc": "1"},
            audio_codec=None,  # Matroska takes any audio: always copied
            full_range=True,
            description="FFV1 .mkv, lossless RGB(A) (archival)",
        ),
        FormatPreset(
            "png",
            None,
            "png",
            {4: "rgba", 3: "rgb24", 1: "gray"},
            description="PNG sequence in a folder (lossless, no audio)",
        ),
        FormatPreset(
            "png16",
            None,
            "png",
            {4: "rgba64", 3: "rgb48", 1: "gray16"},
            description="16-bit PNG sequence in a folder (mattes without 8-bit steps)",
            sample="float",
        ),
        FormatPreset(
            "exr",
            None,
            "exr",
            {4: "rgba", 3: "rgb", 1: "y"},
            description="OpenEXR sequence, half float, premultiplied RGBA (compositing; needs OpenEXR)",
            sample="float",
            suffix=".exr",
        ),
    )
}
SEQUENCE_PRESETS = ("png", "png16", "exr")

# suffix -> preset per kind, when neither --format nor the kind forces one
_SUFFIX_PRESET: dict[str, dict[str, str]] = {
    ".mov": {"rgba": "prores4444", "alpha": "prores", "comp": "prores", "fgr": "prores", "shadow": "prores"},
    ".webm": {"rgba": "vp9", "alpha": "vp9", "comp": "vp9", "fgr": "vp9", "shadow": "vp9"},
    ".mp4": {"alpha": "h264", "comp": "h264", "fgr": "h264", "shadow": "h264"},
    ".m4v": {"alpha": "h264", "comp": "h264", "fgr": "h264", "shadow": "h264"},
    ".mkv": {"rgba": "ffv1", "alpha": "ffv1", "comp": "ffv1", "fgr": "ffv1", "shadow": "ffv1"},
}
# kind when the user gave only a path
_SUFFIX_KIND = {".mov": "rgba", ".webm": "rgba", ".mkv": "rgba", ".mp4": "comp", ".m4v": "comp"}
_PRESET_SUFFIX = {"mov": ".mov", "webm": ".webm", "mp4": ".mp4", "matroska": ".mkv"}


@dataclass(frozen=True)
class OutputSpec:
    """One requested output: what (kind), where (path) and how (preset).

    For a PNG sequence ``path`` is the folder and ``pattern`` the printf-style file name.
    """

    kind: str
    path: Path
    preset: FormatPreset
    pattern: str | None = None

    @property
    def channels(self) -> int:
        return KIND_CHANNELS[self.kind]

    @property
    def is_sequence(self) -> bool:
        return self.preset.container is None

    def describe(self) -> str:
        where = self.path / self.pattern if self.pattern else self.path
        return f"{self.kind} → {where} ({self.preset.name})"


def is_sequence_path(path: str | Path) -> bool:
    """A folder (existing, or a name ending in '/' or without suffix) or a ``%06d.png`` pattern."""
    text = str(path)
    if SEQUENCE_PATTERN.search(Path(text).name):
        return True
    return text.endswith(("/", "\\")) or Path(text).is_dir() or Path(text).suffix == ""


def split_sequence(path: str | Path) -> tuple[Path, str]:
    """``out/%04d.png`` → (out, '%04d.png'); ``out`` or ``out/`` → (out, '%06d.png'); ``.exr`` likewise."""
    p = Path(path)
    if SEQUENCE_PATTERN.search(p.name):
        if p.suffix.lower() not in SEQUENCE_SUFFIXES:
            raise InputError(f"image sequence pattern {p.name!r} must end in .png or .exr")
        if len(SEQUENCE_PATTERN.findall(p.name)) != 1 or "%" in SEQUENCE_PATTERN.sub("", p.name):
            raise InputError(f"image sequence pattern {p.name!r} must hold exactly one %d (e.g. %06d.png)")
        return p.parent, p.name
    return p, DEFAULT_SEQUENCE_NAME


def parse_output(text: str, format_name: str | None = None) -> OutputSpec:
    """``[KIND=]PATH`` → :class:`OutputSpec`; the preset comes from ``format_name`` or the suffix."""
    kind: str | None = None
    path_text = text
    head, sep, tail = text.partition("=")
    if sep and head.strip().lower() in KINDS:
        kind, path_text = head.strip().lower(), tail
    elif sep and "/" not in head and "\\" not in head and "." not in head:
        raise InputError(f"unknown output kind {head!r} in {text!r}: use one of {', '.join(KINDS)}")
    if not path_text.strip():
        raise InputError(f"output {text!r} has no path")
    return resolve_output(Path(path_text), kind, format_name)


def resolve_output(path: Path, kind: str | None = None, format_name: str | None = None) -> OutputSpec:
    """Pick kind and preset for ``path``: explicit kind/format win, else the suffix decides."""
    sequence = is_sequence_path(path) or (format_name in SEQUENCE_PRESETS)
    if format_name is not None and format_name not in PRESETS:
        raise InputError(f"unknown format {format_name!r}: use one of {', '.join(PRESETS)}")
    suffix = path.suffix.lower()
    if sequence:
        return _sequence_output(path, kind, format_name)
    if suffix == ".png":
        raise InputError(f"{path}: for PNG frames give a folder (out/) or a pattern (out/%06d.png)")
    if suffix == ".exr":
        raise InputError(f"{path}: EXR output of a video is a sequence: give a pattern (out/%05d.exr) or a folder")
    kind = kind or _SUFFIX_KIND.get(suffix)
    if kind is None:
        known = ", ".join(sorted(_SUFFIX_KIND))
        raise InputError(f"{path}: unknown output type {suffix or '(no suffix)'}; use {known} or a folder")
    if format_name is None:
        name = _SUFFIX_PRESET.get(suffix, {}).get(kind)
        if name is None:
            raise InputError(_no_preset_message(path, kind))
        preset = PRESETS[name]
    else:
        preset = PRESETS[format_name]
        expected = _PRESET_SUFFIX.get(preset.container or "")
        if expected and suffix not in (expected, ".m4v" if expected == ".mp4" else expected):
            raise InputError(f"{path}: --format {preset.name} writes {expected} files")
    return _checked(OutputSpec(kind, path, preset))


def _sequence_output(path: Path, kind: str | None, format_name: str | None) -> OutputSpec:
    """A folder or printf pattern: PNG (8-bit, or 16-bit with ``--format png16``) or EXR frames."""
    suffix = path.suffix.lower()
    patterned = SEQUENCE_PATTERN.search(path.name) is not None
    if suffix and suffix not in SEQUENCE_SUFFIXES and not patterned:
        raise InputError(f"{path}: an image sequence is a folder or a pattern like out/%06d.png or out/%05d.exr")
    if format_name not in (None, *SEQUENCE_PRESETS):
        raise InputError(
            f"{path} is a folder/pattern, which only holds PNG or EXR frames (got --format {format_name}; "
            f"use {', '.join(SEQUENCE_PRESETS)})"
        )
    folder, pattern = split_sequence(path)
    pattern_suffix = Path(pattern).suffix.lower()
    name = format_name or ("exr" if pattern_suffix == ".exr" else "png")
    preset = PRESETS[name]
    if not patterned:
        pattern = pattern[: -len(Path(pattern).suffix)] + preset.suffix
    elif pattern_suffix != preset.suffix:
        raise InputError(f"{path}: --format {name} writes {preset.suffix} frames, not {pattern_suffix}")
    return _checked(OutputSpec(kind or "rgba", folder, preset, pattern))


def _no_preset_message(path: Path, kind: str) -> str:
    if kind == "rgba":
        return (
            f"{path}: {path.suffix} cannot carry alpha; use .mov (ProRes 4444), .webm (VP9 alpha), "
            ".mkv (FFV1) or a PNG folder, or ask for comp=/alpha= instead"
        )
    return f"{path}: no preset writes {kind} to {path.suffix} files"


def _checked(spec: OutputSpec) -> OutputSpec:
    if spec.channels not in spec.preset.pix_fmt:
        raise InputError(f"{spec.path}: format {spec.preset.name} cannot hold {spec.kind} (no alpha channel)")
    return spec


def parse_save(text: str, format_name: str | None = None) -> list[OutputSpec]:
    """``comp=out.mp4,rgba=out.mov`` → one spec per comma-separated item."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError("--save needs KIND=PATH[,KIND=PATH...]")
    return [parse_output(item, format_name) for item in items]


def check_encoder(preset: FormatPreset) -> None:
    """Raise :class:`MissingDependencyError` when this PyAV/FFmpeg build lacks the preset's encoder."""
    if preset.container is None:
        if preset.codec == "exr":
            from .exr import require_openexr

            require_openexr()
        return
    import av

    try:
        av.Codec(preset.codec, "w")
    except Exception as exc:  # av.codec.codec.UnknownCodecError, no public base
        raise MissingDependencyError(
            f"this FFmpeg build (PyAV {av.__version__}) has no {preset.codec} encoder, needed for "
            f"{preset.name}; pick another --format (e.g. {'png' if preset.alpha_capable else 'h264'})"
        ) from exc


def sequence_regex(pattern: str) -> re.Pattern[str]:
    """Regex matching the file names a printf pattern such as ``frame_%04d.png`` produces."""
    m = SEQUENCE_PATTERN.search(pattern)
    if m is None:
        raise InputError(f"image sequence pattern {pattern!r} holds no %d")
    width = m.group(1)
    digits = rf"\d{{{int(width)},}}" if width else r"\d+"
    return re.compile(re.escape(pattern[: m.start()]) + digits + re.escape(pattern[m.end() :]) + r"\Z")


def format_table() -> list[tuple[str, str, str, str]]:
    """(name, container/suffix, codec, description) rows for help texts and the README."""
    rows = []
    for p in PRESETS.values():
        where = _PRESET_SUFFIX.get(p.container or "", f"folder/%06d{p.suffix}")
        rows.append((p.name, where, p.codec, p.description))
    return rows
