"""``cleanplate image``: matte still images against a clean plate.

Every check that can fail (inputs exist and are images, plates found, outputs free, model
loadable) runs before the first image is processed, so a run never stops half-way because,
say, the fifth output already exists. Outputs are written atomically.
"""

from __future__ import annotations

import glob
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import InputError, OutputError
from ..options import OUTPUT_SUFFIX as _STILL_SUFFIX
from .options import (
    force_option,
    keep_shadow_value,
    load_matter,
    matte_control_options,
    matte_controls,
    matting_options,
)

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


def parse_save(value: str) -> list[str]:
    kinds = [k.strip().lower() for k in value.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in OUTPUT_SUFFIX]
    if unknown or not kinds:
        raise click.BadParameter(
            f"unknown output {unknown[0] if unknown else value!r}; choose from {', '.join(OUTPUT_SUFFIX)}",
            param_hint="'--save'",
        )
    return list(dict.fromkeys(kinds))


def plan_outputs(
    sources: Sequence[Path],
    outdir: Path,
    kinds: Sequence[str],
    protected: Iterable[Path],
    force: bool,
    ext: str = ".png",
) -> list[dict[str, Path]]:
    """Output paths per source; refuses clashes, overwriting inputs, and existing files without ``force``."""
    from ..io.atomic import check_dir_creatable, check_output

    check_dir_creatable(outdir)
    exists = outdir.is_dir()
    keep = {p.resolve() for p in protected}
    owners: dict[Path, Path] = {}
    plan = []
    for src in sources:
        outputs = {kind: outdir / f"{src.stem}{OUTPUT_SUFFIX[kind]}{ext}" for kind in kinds}
        for path in outputs.values():
            key = path.resolve()
            if key in keep:
                raise OutputError(f"output {path} would overwrite an input; choose another -o folder")
            if key in owners:
                raise OutputError(f"{owners[key]} and {src} would both write {path} (same file name)")
            owners[key] = src
            if exists:
                check_output(path, force)
        plan.append(outputs)
    return plan


def probe_images(paths: Iterable[Path]) -> None:
    """Cheap header check (no decoding) so a non-image fails before the model loads."""
    from PIL import Image, UnidentifiedImageError

    for p in paths:
        try:
            with Image.open(p):
                pass
        except UnidentifiedImageError:
            raise InputError(f"{p}: not an image file (or a format Pillow cannot read)") from None
        except OSError as exc:
            raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None


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
@click.option("--output", "-o", "outdir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option(
    "--save",
    "save",
    default=None,
    metavar="LIST",
    help="Comma list of outputs: rgba (<stem>.png), alpha, fgr, comp, err, ref, shadow (<stem>_<kind>.png). "
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
    force: bool,
    **model_params: Any,
) -> None:
    """Matte images SRC... (files, folders, globs) against a clean plate; write PNGs to -o OUTDIR.

    \b
    Example:
      cleanplate image shots/*.jpg --plate shots/plate.jpg -o out/ --save rgba,comp --background beach.jpg
      cleanplate image --sample carpark -o out/
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
    plates = [plate] * len(srcs) if plate is not None else match_plates(srcs, plate_dir)  # type: ignore[arg-type]
    for p in {*plates}:
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file")
    probe_images([*srcs, *{*plates}])
    from ..compose import resolve_background

    bg = resolve_background(background) if "comp" in kinds else None

    from ..io.atomic import ensure_dir

    plan = plan_outputs(srcs, outdir, kinds, protected=[*srcs, *plates], force=force, ext=ext)
    matter = load_matter(model_params)
    ensure_dir(outdir)
    for outputs in plan:  # the folder may have been created just now: re-check cheaply
        for path in outputs.values():
            if path.exists() and not force:
                raise OutputError(f"output {path} already exists (use --force to overwrite)")
    _run(matter, srcs, plates, plate, plan, bg, align, batch_size, force, finish=finish, depth=depth)
    n_files = sum(len(o) for o in plan)
    click.echo(f"cleanplate: wrote {n_files} file(s) for {len(srcs)} image(s) to {outdir}", err=True)


def _run(
    matter: Any,
    srcs: list[Path],
    plates: list[Path],
    shared_plate: Path | None,
    plan: list[dict[str, Path]],
    background: Any,
    align: bool,
    batch_size: int,
    force: bool,
    finish: Any = None,
    depth: int = 8,
) -> None:
    from tqdm import tqdm

    from ..io.image import read_image
    from ..pipeline.still import matte_stills

    plate_arr = read_image(shared_plate) if shared_plate is not None else None
    step = 1 if align else batch_size  # per-image warnings name their file
    with tqdm(total=len(srcs), unit="img", file=sys.stderr, disable=None, dynamic_ncols=True) as bar:
        for chunk in _chunks(len(srcs), step):
            frames = [srcs[i] for i in chunk]
            chunk_plates = plate_arr if plate_arr is not None else [plates[i] for i in chunk]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                mattes = matte_stills(matter, frames, chunk_plates, align=align, batch_size=batch_size, options=finish)
            for w in caught:
                bar.write(f"cleanplate: warning: {frames[0] if len(frames) == 1 else ''}: {w.message}", file=sys.stderr)
            for i, matte in zip(chunk, mattes, strict=True):
                for kind, path in plan[i].items():
                    matte.save(path, kind, background=background, force=force, depth=depth)
            bar.update(len(chunk))
