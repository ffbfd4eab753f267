"""``cleanplate image``: matte still images against a clean plate.

Every check that can fail (inputs exist and are images, their headers and PNG data are sound,
plates found and of the frame's aspect, outputs free, model loadable) runs before the first image
is processed, so a run never stops half-way because, say, the fifth output already exists. What
can only fail later (a JPEG cut short, memory) is reported with the file's name and the batch goes
on; the summary counts "N done, M failed, K skipped" and the exit status is 2 if any failed.
Outputs are written atomically; folders are created when the first file is written (and removed
again if the run leaves them empty); ``--skip-existing`` resumes a batch.
"""

from __future__ import annotations

import glob
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import CleanplateError, InputError, OutputError
from ..options import OUTPUT_SUFFIX as _STILL_SUFFIX
from .options import (
    force_option,
    keep_shadow_value,
    load_matter,
    matte_control_options,
    matte_controls,
    matting_options,
)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

# output kind -> file name suffix before the extension
OUTPUT_SUFFIX = {**_STILL_SUFFIX, "shadow": "_shadow"}
# --format -> (extension, bit depth)
IMAGE_FORMATS = {"png": (".png", 8), "png16": (".png", 16), "exr": (".exr", 16)}


def _is_glob(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def _images_in(folder: Path) -> list[Path]:
    from ..io.image import is_image_path

    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))


def expand_sources(specs: Iterable[str], exclude: Iterable[Path] = ()) -> list[Path]:
    """Files, folders (their images, not recursive) and glob patterns → an ordered list without repeats."""
    skip = {p.resolve() for p in exclude}
    found: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            items = _images_in(path)
            if not items:
                from ..io.image import IMAGE_SUFFIXES

                raise InputError(f"{path}: folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        elif path.exists():
            items = [path]
        elif _is_glob(spec):
            items = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
            if not items:
                raise InputError(f"no files match {spec!r}")
        else:
            raise InputError(f"{path}: no such file")
        found.extend(items)
    unique: list[Path] = []
    seen: set[Path] = set()
    for p in found:
        key = p.resolve()
        if key not in seen and key not in skip:
            seen.add(key)
            unique.append(p)
    if not unique:
        raise InputError("no input images left (the plate is not matted against itself)")
    return unique


def match_plates(sources: Sequence[Path], plate_dir: Path) -> list[Path]:
    """For each source the image in ``plate_dir`` with the same file stem."""
    if not plate_dir.is_dir():
        raise InputError(f"--plate-dir {plate_dir}: no such folder")
    by_stem: dict[str, list[Path]] = {}
    for p in _images_in(plate_dir):
        by_stem.setdefault(p.stem, []).append(p)
    plates = []
    for src in sources:
        candidates = by_stem.get(src.stem, [])
        if not candidates:
            raise InputError(f"no plate named {src.stem}.* in {plate_dir} for {src}")
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise InputError(f"several plates for {src} in {plate_dir}: {names}")
        plates.append(candidates[0])
    return plates


def parse_save(value: str, choices: Iterable[str] = OUTPUT_SUFFIX) -> list[str]:
    """``--save rgba,comp`` → the kinds, in order, once each; one line naming the first unknown."""
    choices = list(choices)
    kinds = [k.strip().lower() for k in value.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in choices]
    if unknown or not kinds:
        raise click.BadParameter(
            f"unknown output {unknown[0] if unknown else value!r}; choose from {', '.join(choices)}",
            param_hint="'--save'",
        )
    return list(dict.fromkeys(kinds))


def output_paths(
    src: Path, target: Path, kinds: Sequence[str], single_file: bool, ext: str = ".png"
) -> dict[str, Path]:
    """Where each output kind of ``src`` goes: ``target/<stem><suffix>.png``, or with ``single_file``
    (``-o result.png``, one input) ``result.png`` for the first kind and ``result_<kind>.png`` beside it."""
    if not single_file:
        return {kind: target / f"{src.stem}{OUTPUT_SUFFIX[kind]}{ext}" for kind in kinds}
    first = kinds[0]
    return {
        kind: target
        if kind == first
        else target.with_name(f"{target.stem}{OUTPUT_SUFFIX[kind] or '_rgba'}{target.suffix}")
        for kind in kinds
    }


def plan_outputs(
    sources: Sequence[Path],
    outdir: Path,
    kinds: Sequence[str],
    protected: Iterable[Path],
    force: bool,
    *,
    skip_existing: bool = False,
    single_file: bool = False,
    ext: str = ".png",
) -> list[dict[str, Path]]:
    """Output paths per source; refuses clashes, overwriting inputs, and existing files without ``force``.

    With ``skip_existing`` an existing output is left alone instead (it is dropped from the plan;
    a source with every output present gets an empty plan: skipped).
    """
    from ..io.atomic import check_dir_creatable, check_output

    folder = outdir.parent if single_file else outdir
    check_dir_creatable(folder)
    exists = folder.is_dir()
    keep = {p.resolve() for p in protected}
    owners: dict[Path, Path] = {}
    plan = []
    for src in sources:
        outputs = output_paths(src, outdir, kinds, single_file, ext)
        for kind, path in list(outputs.items()):
            key = path.resolve()
            if key in keep:
                raise OutputError(f"output {path} would overwrite an input; choose another -o folder")
            if key in owners:
                raise OutputError(f"{owners[key]} and {src} would both write {path} (same file name)")
            owners[key] = src
            if skip_existing and path.is_file():
                del outputs[kind]
            elif exists:
                check_output(path, force)
        plan.append(outputs)
    return plan


def probe_images(paths: Iterable[Path]) -> dict[Path, tuple[int, int]]:
    """Header check of every file (no decoding; PNG data checked by CRC) so a bad input fails before
    the model loads. Returns (height, width) per path; one line naming every bad file."""
    from ..io.image import image_size

    sizes: dict[Path, tuple[int, int]] = {}
    problems: list[str] = []
    for p in paths:
        if p in sizes:
            continue
        try:
            sizes[p] = image_size(p, verify=True)
        except InputError as exc:
            problems.append(str(exc))
    _refuse(problems)
    return sizes


def _refuse(problems: list[str]) -> None:
    """One line for the first problem, counting the others (all found before any work)."""
    if problems:
        more = f" (and {len(problems) - 1} more input(s) with problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)


def check_pairs(
    srcs: Sequence[Path],
    plates: Sequence[Path],
    sizes: dict[Path, tuple[int, int]],
    align: bool,
    backbone_scale: float | None,
) -> None:
    """Before the model loads: every plate fits its frame (same aspect, unless ``align``) and a fixed
    ``--backbone-scale`` leaves the network a few pixels of every frame. Messages name the file."""
    from ..options import check_backbone_scale
    from ..plate.fit import aspect_matches

    problems = []
    for src, plate in zip(srcs, plates, strict=True):
        (fh, fw), (ph, pw) = sizes[src], sizes[plate]
        if not align and (ph, pw) != (fh, fw) and not aspect_matches((ph, pw), (fh, fw)):
            problems.append(
                f"{src}: plate is {pw}x{ph} but the frame is {fw}x{fh} (another aspect ratio; plate {plate}); "
                "crop the plate to the same framing, or use --align for a handheld plate"
            )
        if backbone_scale is not None:
            try:
                check_backbone_scale(backbone_scale, fh, fw, "--backbone-scale")
            except InputError as exc:
                problems.append(f"{src}: {exc}")
    _refuse(problems)


def _still_options(params: dict[str, Any], save: str | None) -> Any:
    """The matte controls and shadow settings (popped from the command's kwargs), checked."""
    from ..pipeline.still import StillOptions

    controls = matte_controls(params)
    keep_shadow = keep_shadow_value(params)
    wants_shadow = save is not None and "shadow" in parse_save(save)
    return StillOptions(controls=controls, shadow=wants_shadow, keep_shadow=keep_shadow)


def _chunks(n: int, size: int) -> Iterable[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


@click.command("image")
@click.argument("sources", nargs=-1, metavar="SRC...")
@click.option(
    "--sample",
    type=click.Choice(["carpark", "vtest"]),
    default=None,
    help="Run on a bundled sample pair instead of SRC and --plate (try it right after installing).",
)
@click.option("--plate", "-p", type=click.Path(dir_okay=False, path_type=Path), help="Clean plate for all inputs.")
@click.option(
    "--plate-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of plates matched to inputs by file name (stem).",
)
@click.option(
    "--output",
    "-o",
    "outdir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder; or, with one input, a file name such as result.png.",
)
@click.option(
    "--save",
    "save",
    default=None,
    metavar="LIST",
    help="Comma list of outputs: rgba (<stem>.png), alpha, fgr, comp, err, ref (<stem>_<kind>.png). "
    "[default: rgba; rgba,comp with --background]",
)
@click.option(
    "--format",
    "image_format",
    type=click.Choice(list(IMAGE_FORMATS)),
    default="png",
    show_default=True,
    help="png (8-bit), png16 (16-bit PNG), exr (OpenEXR half float, RGBA premultiplied; needs OpenEXR).",
)
@click.option("--background", "-b", default=None, metavar="COLOR|IMAGE", help="Background for comp. [default: green]")
@click.option("--align", is_flag=True, help="Align a handheld plate to each image (feature homography).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True, help="Images per forward pass.")
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Leave outputs that already exist alone and do the rest (resume an interrupted batch).",
)
@matte_control_options
@matting_options
@force_option
def command(
    sources: tuple[str, ...],
    sample: str | None,
    plate: Path | None,
    plate_dir: Path | None,
    outdir: Path,
    save: str | None,
    image_format: str,
    background: str | None,
    align: bool,
    batch_size: int,
    skip_existing: bool,
    force: bool,
    **model_params: Any,
) -> None:
    """Matte images SRC... (files, folders, globs) against a clean plate; write PNGs to -o OUTDIR.

    Every input is checked before the model loads; an image that still fails later is reported by
    name and the batch goes on (exit status 2 at the end, with a count of what was done).

    \b
    Example:
      cleanplate image shots/*.jpg --plate shots/plate.jpg -o out/ --save rgba,comp --background beach.jpg
      cleanplate image --sample carpark -o out/
      cleanplate image shot.jpg --plate plate.jpg -o result.png
    """
    if sample is not None:
        if sources or plate is not None or plate_dir is not None:
            raise click.UsageError("--sample replaces SRC and --plate; give one or the other")
        from ..samples import sample_pair

        src_path, plate = sample_pair(sample)
        sources = (str(src_path),)
    if not sources:
        raise click.UsageError("give at least one SRC (file, folder or glob), or --sample carpark")
    if (plate is None) == (plate_dir is None):
        raise click.UsageError("give exactly one of --plate PLATE or --plate-dir DIR")
    if force and skip_existing:
        raise click.UsageError("--force and --skip-existing contradict each other; give one")
    if plate is not None and str(plate) == "auto":
        raise InputError(
            "--plate auto builds the plate from a video (cleanplate video INPUT --plate auto); for images build "
            "one first: cleanplate plate CLIP -o plate.png"
        )
    finish = _still_options(model_params, save)
    ext, depth = IMAGE_FORMATS[image_format]
    if image_format == "exr":
        from ..io.exr import require_openexr

        require_openexr()
    kinds = parse_save(save) if save is not None else (["rgba", "comp"] if background is not None else ["rgba"])
    exclude = [plate] if plate is not None else []
    srcs = expand_sources(sources, exclude=exclude)
    single_file = _single_file(outdir, srcs, kinds)
    plates = [plate] * len(srcs) if plate is not None else match_plates(srcs, plate_dir)  # type: ignore[arg-type]
    # Everything that can be known before the model loads: headers, sizes, plates, outputs.
    sizes = probe_images([*srcs, *dict.fromkeys(plates)])
    check_pairs(srcs, plates, sizes, align, model_params.get("backbone_scale"))
    from ..compose import resolve_background

    bg = resolve_background(background) if "comp" in kinds else None

    from ..io.atomic import remove_stale_temp_files

    plan = plan_outputs(
        srcs,
        outdir,
        kinds,
        protected=[*srcs, *plates],
        force=force,
        skip_existing=skip_existing,
        single_file=single_file,
        ext=ext,
    )
    removed, freed = remove_stale_temp_files(p for outputs in plan for p in outputs.values())
    if removed:
        click.echo(
            f"cleanplate: note: removed {removed} temp file(s) ({freed / 2**20:.1f} MiB) left by an interrupted run",
            err=True,
        )
    todo = [i for i, outputs in enumerate(plan) if outputs]
    skipped = len(srcs) - len(todo)
    folder = outdir.parent if single_file else outdir
    if not todo:
        click.echo(f"cleanplate: nothing to do: all {len(srcs)} image(s) have their outputs in {folder}", err=True)
        return
    matter = load_matter(model_params)
    batch = _Batch(matter, srcs, plates, plate, plan, bg, align, batch_size, force, folder, finish, depth)
    batch.run(todo)
    batch.report(skipped)


def _single_file(outdir: Path, srcs: Sequence[Path], kinds: Sequence[str]) -> bool:
    """``-o result.png`` (an image file name that is not a folder): one input's outputs as that file."""
    from ..io.image import WRITE_FORMATS

    if outdir.is_dir() or outdir.suffix.lower() not in WRITE_FORMATS:
        return False
    if len(srcs) > 1:
        raise click.UsageError(
            f"-o {outdir} names one file, but there are {len(srcs)} inputs; give a folder (e.g. -o {outdir.stem}/)"
        )
    fmt = WRITE_FORMATS[outdir.suffix.lower()][0]
    if fmt == "JPEG" and "rgba" in kinds:
        raise click.UsageError(f"-o {outdir}: JPEG cannot store alpha; use .png (or --save comp for a composite)")
    return True


class _Batch:
    """One run over the images: per-image failures are reported and the rest goes on."""

    def __init__(
        self,
        matter: Any,
        srcs: list[Path],
        plates: list[Path],
        shared_plate: Path | None,
        plan: list[dict[str, Path]],
        background: Any,
        align: bool,
        batch_size: int,
        force: bool,
        folder: Path,
        finish: Any = None,
        depth: int = 8,
    ) -> None:
        self.matter, self.srcs, self.plates, self.plan = matter, srcs, plates, plan
        self.shared_plate, self.background, self.align = shared_plate, background, align
        self.batch_size, self.force, self.folder = batch_size, force, folder
        self.finish, self.depth = finish, depth  # matte controls / shadow, and the output bit depth
        self.done: list[int] = []
        self.failed: list[int] = []
        self.files = 0
        self.created: list[Path] = []  # folders this run created (removed again if left empty)
        self.bar: Any = None

    # ------------------------------------------------------------------------------------------
    def run(self, todo: list[int]) -> None:
        from tqdm import tqdm

        from ..io.image import read_image

        total = len(todo)
        try:
            with tqdm(total=total, unit="img", file=sys.stderr, disable=None, dynamic_ncols=True) as self.bar:
                plate_arr = read_image(self.shared_plate) if self.shared_plate is not None else None
                for chunk in _chunks(len(todo), 1 if self.align else self.batch_size):
                    items = [todo[k] for k in chunk]
                    self._chunk(items, plate_arr)
                    self.bar.update(len(items))
        except KeyboardInterrupt:
            self._tidy()
            left = total - len(self.done) - len(self.failed)
            click.echo(
                f"cleanplate: interrupted after {len(self.done)} of {total} image(s) ({left} not done); the outputs "
                f"written are complete: re-run with --skip-existing to do the rest",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
        except OutputError as exc:  # the disk is full, or the folder went away: nothing more can be written
            self._tidy()
            click.echo(f"cleanplate: error: {exc}", err=True)
            if len(self.srcs) > 1:
                left = total - len(self.done) - len(self.failed)
                click.echo(f"cleanplate: {self._counts()} ({left} not started); stopped", err=True)
            sys.exit(EXIT_USER_ERROR)
        self._tidy()

    def _chunk(self, items: list[int], plate_arr: Any) -> None:
        try:
            mattes = self._matte(items, plate_arr)
        except _ItemError as exc:
            if len(items) == 1:
                self._fail(items[0], exc.reason)
                return
            for i in items:  # find which one: one by one
                self._chunk([i], plate_arr)
            return
        for i, matte in zip(items, mattes, strict=True):
            self._save(i, matte)

    def _matte(self, items: list[int], plate_arr: Any) -> list[Any]:
        frames = [self.srcs[i] for i in items]
        plates = plate_arr if plate_arr is not None else [self.plates[i] for i in items]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                from ..pipeline.still import matte_stills

                mattes = matte_stills(
                    self.matter, frames, plates, align=self.align, batch_size=self.batch_size, options=self.finish
                )
            except CleanplateError as exc:
                raise _ItemError(str(exc)) from exc
            except MemoryError as exc:
                raise _ItemError(_memory_message(frames)) from exc
            except RuntimeError as exc:
                if not _is_out_of_memory(exc):
                    raise
                raise _ItemError(_memory_message(frames)) from exc
        for w in caught:
            index = getattr(w.message, "index", None)
            where = (
                frames[index] if index is not None and index < len(frames) else frames[0] if len(frames) == 1 else None
            )
            self._say(f"cleanplate: warning: {f'{where}: ' if where is not None else ''}{w.message}")
        return mattes

    def _save(self, i: int, matte: Any) -> None:
        from ..io.atomic import ensure_dir, is_disk_full

        for kind, path in self.plan[i].items():
            self._ensure(path.parent, ensure_dir)
            try:
                matte.save(path, kind, background=self.background, force=self.force, depth=self.depth)
            except OutputError as exc:
                if is_disk_full(exc):
                    raise
                self._fail(i, str(exc))
                return
            except OSError as exc:
                if is_disk_full(exc):
                    from ..io.atomic import disk_full_error

                    raise disk_full_error(path) from exc
                raise
            except MemoryError:
                self._fail(i, _memory_message([self.srcs[i]]))
                return
            self.files += 1
        self.done.append(i)

    def _ensure(self, folder: Path, ensure_dir: Any) -> None:
        if folder.is_dir():
            return
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        ensure_dir(folder)
        self.created.extend(missing)  # innermost first

    def _tidy(self) -> None:
        """Remove the folders this run created and left empty (a failure after the model loaded)."""
        for folder in self.created:
            try:
                folder.rmdir()
            except OSError:
                break

    def _fail(self, i: int, reason: str) -> None:
        src = str(self.srcs[i])
        self.failed.append(i)
        message = reason if src in reason else f"{src}: {reason}"
        self._say(f"cleanplate: error: {message}")

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            click.echo(line, err=True)

    def _counts(self, skipped: int = 0) -> str:
        return f"{len(self.done)} done, {len(self.failed)} failed, {skipped} skipped"

    def report(self, skipped: int) -> None:
        """The summary; exit status 2 when an image failed (after every other image was done)."""
        if len(self.srcs) == 1 and self.failed:  # the error line said it all
            sys.exit(EXIT_USER_ERROR)
        where = self.folder
        line = f"cleanplate: wrote {self.files} file(s) for {len(self.done)} image(s) to {where}"
        if len(self.srcs) > 1 or skipped or self.failed:
            line += f"; {self._counts(skipped)}"
        click.echo(line, err=True)
        if self.failed:
            sys.exit(EXIT_USER_ERROR)


class _ItemError(Exception):
    """One image (or a batch holding it) could not be matted; ``reason`` is the one line to print."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text


def _memory_message(frames: Sequence[Path]) -> str:
    from ..io.image import image_size

    if len(frames) != 1:
        return "not enough memory for this batch of images (try --batch-size 1)"
    try:
        h, w = image_size(frames[0])
        size = f" {w}x{h}"
    except (InputError, MemoryError):
        size = ""
    return (
        f"{frames[0]}: not enough memory to matte this{size} image (try a smaller image or a smaller --backbone-scale)"
    )
