"""``cleanplate eval``: score one or more models on a deterministic benchmark with ground truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .options import device_option, force_option

DEFAULT_LEVELS = "low,high"


def _split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _display_names(models: tuple[str, ...]) -> list[str]:
    """Short unique names for table columns: built-in names as is, checkpoints by file name."""
    names: list[str] = []
    for m in models:
        base = Path(m).name if ("/" in m or "\\" in m or Path(m).suffix) else m
        name, k = base, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


@click.command("eval")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    metavar="PATH|NAME",
    help="Model to score: checkpoint path or built-in name (default, classical). Repeat to compare side by side. "
    "[default: default]",
)
@click.option(
    "--gt-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Ground-truth subjects: <id>_pha.png with <id>_fgr.png or <id>_img.jpg (e.g. ../shared/data/train/gt).",
)
@click.option(
    "--backgrounds",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Background photos to composite onto (e.g. ../shared/data/train/backgrounds).",
)
@click.option("--subjects", default=None, metavar="ID,ID", help="Only these subject ids. [default: the split's]")
@click.option(
    "--split",
    type=click.Choice(["holdout", "all"]),
    default="holdout",
    show_default=True,
    help="holdout: the subjects and backgrounds training never sees (all, if the folders hold none of them).",
)
@click.option(
    "--levels",
    default=DEFAULT_LEVELS,
    show_default=True,
    metavar="L,L",
    help="Plate difficulty: low (aligned, noise only), medium, high (handheld: shift, rotation, exposure drift).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the composites and plate perturbations.")
@click.option(
    "--max-size",
    type=click.IntRange(min=32),
    default=1024,
    show_default=True,
    help="Downsize cases so the long side is at most this many pixels.",
)
@click.option(
    "--triples",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Instead of composites: a folder of <name>_src, <name>_plate and <name>_alpha images (+ optional <name>_fgr).",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write all results as JSON.")
@click.option(
    "--grid",
    "grid_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG: src | plate | gt alpha | alpha and composite per model, one row per case (first 40).",
)
@click.option("--summary", is_flag=True, help="Print only the mean rows, not one row per case.")
@click.option(
    "--reference",
    default=None,
    metavar="NAME",
    help="Also report each model's per-case MAD ratio to this one (e.g. classical; added to -m if missing).",
)
@click.option(
    "--align",
    is_flag=True,
    help="Align each plate onto its frame before every model, as `cleanplate image --align` does.",
)
@click.option(
    "--oracle",
    is_flag=True,
    help="Also score the per-pixel best of the models (each pixel from the one closest to the truth): "
    "a bound on combining them, not a method. Needs two or more models.",
)
@device_option
@force_option
def command(
    models: tuple[str, ...],
    gt_dir: Path | None,
    backgrounds: Path | None,
    subjects: str | None,
    split: str,
    levels: str,
    seed: int,
    max_size: int,
    triples: Path | None,
    json_path: Path | None,
    grid_path: Path | None,
    summary: bool,
    reference: str | None,
    align: bool,
    oracle: bool,
    device: str,
    force: bool,
) -> None:
    """Score models on ground truth: SAD, MSE, MAD, Grad, Conn (alphamatting.com) and foreground MSE.

    Either composite ground-truth subjects onto backgrounds with plates perturbed at fixed seeds
    (--gt-dir and --backgrounds), or read prepared triples (--triples). Results are deterministic
    for a given seed. Example:

        cleanplate eval -m default -m classical --gt-dir ../shared/data/train/gt
        --backgrounds ../shared/data/train/backgrounds --json eval.json
    """
    from ..errors import InputError
    from ..io.atomic import check_output

    if triples is not None and (gt_dir is not None or backgrounds is not None):
        raise InputError("use either --triples or --gt-dir/--backgrounds, not both")
    if triples is None and (gt_dir is None or backgrounds is None):
        raise InputError("give --gt-dir and --backgrounds (e.g. ../shared/data/train/gt, .../backgrounds) or --triples")
    for path in (json_path, grid_path):
        if path is not None:
            check_output(path, force)
    if json_path is not None and grid_path is not None and json_path.resolve() == grid_path.resolve():
        raise InputError("--json and --grid name the same file")
    level_list = _split_list(levels)
    if triples is None and not level_list:
        raise InputError("--levels is empty; use e.g. low,high")

    cases, total, config = _cases(triples, gt_dir, backgrounds, subjects, split, level_list, seed, max_size)
    model_args = models or ("default",)
    if reference is not None and reference not in model_args:
        model_args = (*model_args, reference)
    names = _display_names(model_args)
    ref_name = names[model_args.index(reference)] if reference is not None else None
    if oracle and len(names) < 2:
        raise InputError("--oracle needs two or more models (-m A -m B)")
    from ..eval.benchmark import ORACLE

    if oracle and ORACLE in names:
        raise InputError(f"a model is named {ORACLE!r}, the name of --oracle's column; rename the file")
    predictors, infos = _load_models(model_args, names, device, align)
    config["align"] = align
    config["reference"] = ref_name
    config["oracle"] = oracle
    if oracle:
        infos[ORACLE] = {"model": ORACLE, "of": ",".join(names)}
    _run(predictors, infos, names, cases, total, config, json_path, grid_path, summary, force, ref_name, oracle)


def _cases(triples, gt_dir, backgrounds, subjects, split, level_list, seed, max_size):
    from .._version import __version__
    from ..eval import benchmark

    config: dict[str, Any] = {"cleanplate": __version__, "max_size": max_size}
    if triples is not None:
        names = benchmark.list_triples(triples)
        config.update(source="triples", triples=str(triples))
        return benchmark.triple_cases(triples, max_size=max_size), len(names), config
    ids = benchmark.select_subjects(gt_dir, _split_list(subjects) or None, split)
    bgs = benchmark.select_backgrounds(backgrounds, split)
    config.update(
        source="synthetic",
        gt_dir=str(gt_dir),
        backgrounds=str(backgrounds),
        split=split,
        subjects=ids,
        background_pool=[p.stem for p in bgs],
        levels=level_list,
        seed=seed,
        src_noise=benchmark.SRC_NOISE,
    )
    cases = benchmark.synthetic_cases(
        gt_dir, backgrounds, subjects=ids, levels=level_list, seed=seed, max_size=max_size, split=split
    )
    return cases, len(ids) * len(level_list), config


def _load_models(model_args, names, device, align=False):
    from ..api import load
    from ..eval.benchmark import predictor, with_alignment

    predictors, infos = {}, {}
    for arg, name in zip(model_args, names, strict=True):
        matter = load(arg, device=device)
        predictors[name] = with_alignment(predictor(matter)) if align else predictor(matter)
        infos[name] = {k: v for k, v in matter.info.items() if isinstance(v, (str, int, float, bool)) or v is None}
        infos[name]["model"] = arg
    return predictors, infos


def _run(
    predictors, infos, names, cases, total, config, json_path, grid_path, summary, force, reference=None, oracle=False
) -> None:
    from tqdm import tqdm

    from ..eval import report
    from ..eval.benchmark import ORACLE, add_oracle, evaluate
    from ..io.atomic import atomic_path
    from ..io.image import write_image

    names = [*names, ORACLE] if oracle else names
    grid = report.GridBuilder(names) if grid_path is not None else None
    bar = tqdm(total=total, unit="case", desc="eval", file=sys.stderr, disable=None)

    done: list = []  # results so far: written even when the run stops early

    def on_case(case, result, predictions) -> None:
        if oracle:
            add_oracle(case, result, predictions)
        done.append(result)
        if grid is not None:
            grid.add(case, result, predictions)
        bar.set_postfix_str(case.name[:40])
        bar.update(1)

    complete = False
    try:
        evaluate(predictors, cases, on_case=on_case)
        complete = True
    finally:
        bar.close()
        if done and json_path is not None:
            doc = report.to_json(done, names, {**config, "complete": complete}, infos, reference)
            with atomic_path(json_path, force) as tmp:
                tmp.write_text(json.dumps(doc, indent=1) + "\n")
            click.echo(f"wrote {json_path}" + ("" if complete else f" ({len(done)} of {total} cases)"), err=True)
        if done and grid is not None:
            write_image(grid_path, grid.image(), force=force)
            click.echo(f"wrote {grid_path}", err=True)
    click.echo(report.table(done, names, per_case=not summary, reference=reference))
