"""Work items: what ``cleanplate batch`` has to do, read from a folder or a manifest (CSV / JSONL).

A :class:`WorkItem` is plain data (paths, output list, per-item options) that serialises to JSON,
so the same item runs in-process or on a Ray worker. Everything that can be checked without
decoding pixels is checked here, before a model loads: inputs exist and are readable, every input
has a plate, options are valid, no two items write the same file, no output overwrites an input.
Content problems (a corrupt frame) are the item's own failure, reported without stopping the rest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .adapter import IMAGE_EXTS, OUTPUT_SUFFIX, PRESETS, InputError, OutputError, is_color, parse_time, resolve_output

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf", ".mpg", ".mpeg", ".ts", ".mts", ".gif")
IMAGE_KINDS = tuple(OUTPUT_SUFFIX)  # rgba alpha fgr comp err ref
VIDEO_KINDS = ("rgba", "alpha", "comp", "fgr")
PLATE_SUFFIX = "_plate"  # folder mode: shot.mp4 pairs with shot_plate.jpg (or shot_plate.mp4)
MANIFEST_EXTS = (".csv", ".jsonl", ".ndjson")
CONTAINER_EXT = {"mov": ".mov", "webm": ".webm", "mp4": ".mp4", "matroska": ".mkv"}

# per-item options: name -> parser of a manifest cell / JSON value
BOOL_TRUE = {"1", "true", "yes", "y", "on"}
BOOL_FALSE = {"0", "false", "no", "n", "off", ""}


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in BOOL_TRUE:
        return True
    if text in BOOL_FALSE:
        return False
    raise ValueError(f"{value!r} is not a yes/no value (true, false, 1, 0)")


def _time(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        parsed = parse_time(str(value))
        if parsed is None:
            raise ValueError(f"{value!r} is not a time: use seconds (12.5) or [hh:]mm:ss[.ms]")
        seconds = parsed
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return seconds


def _smooth(value: Any) -> float:
    s = float(value)
    if not 0.0 <= s < 1.0:
        raise ValueError(f"smooth must be in [0, 1); got {value}")
    return s


def _text(value: Any) -> str:
    return str(value).strip()


OPTION_PARSERS = {
    "background": _text,
    "align": _bool,
    "match_color": _bool,
    "smooth": _smooth,
    "start": _time,
    "end": _time,
    "audio": _bool,
    "format": _text,
}
VIDEO_ONLY_OPTIONS = ("match_color", "smooth", "start", "end", "audio", "format")
MANIFEST_FIELDS = ("id", "input", "plate", "plate_frames", "outputs", *OPTION_PARSERS)


@dataclass(frozen=True)
class Output:
    """One file (or PNG folder) an item writes. ``preset``/``pattern`` only for video outputs."""

    kind: str
    path: Path
    preset: str | None = None
    pattern: str | None = None


@dataclass
class WorkItem:
    """One input to matte: an image or a video, its plate, its outputs and its own options."""

    id: str
    media: str  # "image" | "video"
    input: Path
    plate: Path | None
    outputs: list[Output]
    plate_frames: tuple[int, int | None] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, name: str, default: Any = None) -> Any:
        value = self.options.get(name)
        return default if value is None else value

    def fingerprint(self, model_key: Mapping[str, Any]) -> str:
        """Everything that decides the outputs' content; a finished item is reused only if it matches."""
        data = {"item": self.to_json(), "model": dict(model_key)}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["input"] = str(self.input)
        data["plate"] = None if self.plate is None else str(self.plate)
        data["outputs"] = [{**asdict(o), "path": str(o.path)} for o in self.outputs]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkItem:
        frames = data.get("plate_frames")
        return cls(
            id=data["id"],
            media=data["media"],
            input=Path(data["input"]),
            plate=None if data.get("plate") is None else Path(data["plate"]),
            outputs=[Output(o["kind"], Path(o["path"]), o.get("preset"), o.get("pattern")) for o in data["outputs"]],
            plate_frames=None if frames is None else (frames[0], frames[1]),
            options=dict(data.get("options") or {}),
        )


@dataclass
class JobDefaults:
    """What the command line says for items that do not say it themselves."""

    outdir: Path
    plate: Path | None = None
    plate_dir: Path | None = None
    save: tuple[str, ...] | None = None  # None: rgba (+ comp when a background is given)
    format_name: str | None = None  # video preset for outputs named by kind
    options: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- reading
def media_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTS:
        return "image"
    if suffix in VIDEO_EXTS:
        return "video"
    return None


def load_jobs(jobs: Path, defaults: JobDefaults) -> list[WorkItem]:
    """JOBS (a folder or a manifest) → checked work items; raises :class:`InputError` with one line."""
    if not jobs.exists():
        raise InputError(f"{jobs}: no such file or folder")
    if jobs.is_dir():
        rows = _folder_rows(jobs, defaults)
        base = jobs
    else:
        suffix = jobs.suffix.lower()
        if suffix not in MANIFEST_EXTS:
            raise InputError(f"{jobs}: JOBS is a folder or a manifest ({', '.join(MANIFEST_EXTS)})")
        rows = _read_manifest(jobs)
        base = jobs.parent
    items = [_item(where, row, base, defaults) for where, row in rows]
    if not items:
        raise InputError(f"{jobs}: no images or videos to process")
    check_items(items)
    return items


def _folder_rows(folder: Path, defaults: JobDefaults) -> list[tuple[str, dict[str, Any]]]:
    """Images and videos in ``folder`` (sorted, not recursive); ``NAME_plate.*`` files are plates."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and media_of(p) is not None)
    plates = {p.stem[: -len(PLATE_SUFFIX)]: p for p in files if p.stem.endswith(PLATE_SUFFIX)}
    skip = {p.resolve() for p in plates.values()}
    if defaults.plate is not None:
        skip.add(defaults.plate.resolve())
    rows = []
    for p in files:
        if p.resolve() in skip:
            continue
        row: dict[str, Any] = {"id": p.name, "input": p.name}
        if defaults.plate is None and defaults.plate_dir is None and p.stem in plates:
            row["plate"] = plates[p.stem].name
        rows.append((str(p), row))
    return rows


def _read_manifest(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text manifest") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    rows: list[tuple[str, dict[str, Any]]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        fields = [f.strip() for f in reader.fieldnames or []]
        if "input" not in fields:
            raise InputError(f"{path}: a CSV manifest needs a header row with an 'input' column")
        _check_fields(fields, f"{path}:1")
        for row in reader:
            if None in row:
                raise InputError(f"{path}:{reader.line_num}: more cells than header columns")
            clean = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
            if not any(clean.values()):
                continue
            rows.append((f"{path}:{reader.line_num}", {k: v for k, v in clean.items() if v not in ("", None)}))
        return rows
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{where}: each line must be a JSON object with an 'input' key")
        _check_fields(list(row), where)
        rows.append((where, {k: v for k, v in row.items() if v is not None and v != ""}))
    return rows


def _check_fields(fields: Iterable[str], where: str) -> None:
    unknown = [f for f in fields if f not in MANIFEST_FIELDS]
    if unknown:
        raise InputError(f"{where}: unknown column {unknown[0]!r}; known: {', '.join(MANIFEST_FIELDS)}")


# ---------------------------------------------------------------------------------------------- building
def _resolve(base: Path, value: Any) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p


def _item(where: str, row: dict[str, Any], base: Path, defaults: JobDefaults) -> WorkItem:
    if "input" not in row:
        raise InputError(f"{where}: no input")
    source = _resolve(base, row["input"])
    media = media_of(source)
    if media is None:
        raise InputError(f"{where}: {source}: not an image or video file name ({source.suffix or 'no suffix'})")
    options = dict(defaults.options)
    for name, parse in OPTION_PARSERS.items():
        if name in row:
            try:
                options[name] = parse(row[name])
            except (TypeError, ValueError) as exc:
                raise InputError(f"{where}: {name}: {exc}") from None
    if media == "image":
        given = [n for n in VIDEO_ONLY_OPTIONS if n in row]
        if given:
            raise InputError(f"{where}: {given[0]} applies to videos only ({source.name} is an image)")
        for n in VIDEO_ONLY_OPTIONS:
            options.pop(n, None)
    elif options.get("start") is not None and options.get("end") is not None and options["end"] <= options["start"]:
        raise InputError(f"{where}: end ({options['end']}s) must be after start ({options['start']}s)")
    background = options.get("background")
    if background and not is_color(background) and background != "blur":
        options["background"] = str(_resolve(base, background))
    plate, plate_frames = _plate_for(where, row, base, source, media, defaults)
    item_id = str(row.get("id") or row["input"])
    outputs = _outputs(where, row.get("outputs"), source, media, defaults, options)
    return WorkItem(item_id, media, source, plate, outputs, plate_frames, options)


def _plate_for(
    where: str, row: dict[str, Any], base: Path, source: Path, media: str, defaults: JobDefaults
) -> tuple[Path | None, tuple[int, int | None] | None]:
    if "plate_frames" in row:
        if media != "video":
            raise InputError(f"{where}: plate_frames applies to videos only")
        if "plate" in row:
            raise InputError(f"{where}: give plate or plate_frames, not both")
        return None, _frame_range(where, row["plate_frames"])
    if "plate" in row:
        return _resolve(base, row["plate"]), None
    if defaults.plate is not None:
        return defaults.plate, None
    if defaults.plate_dir is not None:
        return _plate_in_dir(where, source, defaults.plate_dir), None
    raise InputError(
        f"{where}: no plate for {source.name}: give --plate, --plate-dir, a plate column, "
        f"or a {source.stem}{PLATE_SUFFIX}.* file beside it"
    )


def _plate_in_dir(where: str, source: Path, plate_dir: Path) -> Path:
    if not plate_dir.is_dir():
        raise InputError(f"--plate-dir {plate_dir}: no such folder")
    found = sorted(p for p in plate_dir.glob(f"{source.stem}.*") if p.is_file() and media_of(p) is not None)
    if not found:
        raise InputError(f"{where}: no plate named {source.stem}.* in {plate_dir}")
    if len(found) > 1:
        raise InputError(
            f"{where}: several plates for {source.name} in {plate_dir}: {', '.join(p.name for p in found)}"
        )
    return found[0]


def _frame_range(where: str, value: Any) -> tuple[int, int | None]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        a, b = value
    else:
        a, _, b = str(value).partition(":")
    try:
        start = int(a) if str(a).strip() else 0
        stop = int(b) if b not in (None, "") and str(b).strip() else None
    except ValueError:
        raise InputError(f"{where}: plate_frames {value!r} is not A:B (frame numbers)") from None
    if start < 0 or (stop is not None and stop <= start):
        raise InputError(f"{where}: plate_frames {value!r} must be A:B with 0 <= A < B")
    return start, stop


def default_kinds(defaults: JobDefaults, options: Mapping[str, Any]) -> tuple[str, ...]:
    if defaults.save is not None:
        return defaults.save
    return ("rgba", "comp") if options.get("background") else ("rgba",)


def _outputs(
    where: str, spec: Any, source: Path, media: str, defaults: JobDefaults, options: Mapping[str, Any]
) -> list[Output]:
    """``rgba,comp`` (named after the input) and/or ``KIND=PATH`` entries (relative to OUTDIR)."""
    kinds = IMAGE_KINDS if media == "image" else VIDEO_KINDS
    if spec is None:  # the command line's --save: image-only kinds (err, ref) do not apply to videos
        entries: list[str] = [k for k in default_kinds(defaults, options) if k in kinds]
    elif isinstance(spec, str):
        entries = [e.strip() for e in spec.split(",") if e.strip()]
    elif isinstance(spec, Mapping):
        entries = [f"{k}={v}" for k, v in spec.items()]
    elif isinstance(spec, Sequence):
        entries = [str(e).strip() for e in spec]
    else:
        raise InputError(f"{where}: outputs must be a list like 'rgba,comp' or 'rgba=NAME.mov'")
    if not entries:
        raise InputError(f"{where}: no outputs for this {media} (video outputs: {', '.join(VIDEO_KINDS)})")
    outputs = []
    for entry in entries:
        kind, sep, rel = entry.partition("=")
        kind = kind.strip().lower()
        if kind not in kinds:
            extra = " (err and ref are for images only)" if kind in IMAGE_KINDS else ""
            raise InputError(f"{where}: unknown {media} output {kind!r}; choose from {', '.join(kinds)}{extra}")
        path = _resolve(defaults.outdir, rel.strip()) if sep else None
        outputs.append(_output(where, kind, path, source, media, defaults, options))
    return outputs


def _output(
    where: str,
    kind: str,
    path: Path | None,
    source: Path,
    media: str,
    defaults: JobDefaults,
    options: Mapping[str, Any],
) -> Output:
    suffix = OUTPUT_SUFFIX[kind]
    if media == "image":
        path = path or defaults.outdir / f"{source.stem}{suffix}.png"
        return Output(kind, path)
    fmt = options.get("format") or defaults.format_name
    if fmt is not None and fmt not in PRESETS:
        raise InputError(f"{where}: unknown format {fmt!r}; use one of {', '.join(PRESETS)}")
    if path is None:
        name = f"{source.stem}{suffix}"
        container = PRESETS[fmt].container if fmt else "mov"
        path = defaults.outdir / (name if container is None else f"{name}{CONTAINER_EXT[container]}")
    try:
        spec = resolve_output(path, kind, fmt)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    return Output(kind, spec.path, spec.preset.name, spec.pattern)


# ---------------------------------------------------------------------------------------------- checks
def check_items(items: Sequence[WorkItem]) -> None:
    """Pre-flight over all items: raise one :class:`InputError`/:class:`OutputError` line for the first problem."""
    problems: list[Exception] = []
    ids: dict[str, WorkItem] = {}
    inputs: set[Path] = set()
    for item in items:
        if item.id in ids:
            problems.append(InputError(f"item id {item.id!r} is used twice ({ids[item.id].input} and {item.input})"))
        ids[item.id] = item
        inputs.add(item.input.resolve())
        if item.plate is not None:
            inputs.add(item.plate.resolve())
        for p in (item.input, item.plate):
            if p is not None:
                problem = _readable(p)
                if problem:
                    problems.append(InputError(f"{item.id}: {problem}"))
        background = item.options.get("background")
        if background and not is_color(background) and background != "blur":
            problem = _readable(Path(background))
            if problem:
                problems.append(InputError(f"{item.id}: background {problem}"))
    owners: dict[Path, str] = {}
    for item in items:
        for out in item.outputs:
            key = out.path.resolve()
            if key in inputs:
                problems.append(OutputError(f"{item.id}: output {out.path} would overwrite an input"))
            if key in owners:
                problems.append(OutputError(f"{owners[key]} and {item.id} would both write {out.path}"))
            owners[key] = item.id
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise type(first)(f"{first}{more}")


def _readable(path: Path) -> str | None:
    if not path.exists():
        return f"{path}: no such file"
    if not path.is_file():
        return f"{path}: is not a file"
    if not os.access(path, os.R_OK):
        return f"{path}: permission denied"
    return None
