"""A deterministic matting benchmark: cases with ground truth, and running models over them.

Two sources of cases:

- **Synthetic** (:func:`synthetic_cases`): ground-truth subjects (foreground + alpha, read with
  :func:`cleanplate.data.subjects.load_subjects`) composited onto background photos. The frame is
  ``alpha*F + (1-alpha)*B`` with sensor noise (sigma 0.01) and 8-bit rounding; the plate is ``B``
  perturbed by :func:`cleanplate.data.perturb.perturb_plate` at a difficulty level and rounded to
  8 bits as well. ``low``: an aligned plate, differing by noise only; ``medium``: a tripod bumped;
  ``high``: handheld (shifted by a few px, rotated up to 0.8 deg, scaled up to 1.5 %, exposure,
  gamma and white-balance drift, blur, noise, JPEG). Every case draws its random numbers from
  ``(seed, subject id, level)`` alone, so a case is the same whatever else is selected. The
  subject keeps its own framing; its background is picked per subject (same at every level, so
  levels compare) and cover-cropped to the subject's size.
- **Triples** (:func:`triple_cases`): a folder of real or prepared ``<name>_src.<ext>``,
  ``<name>_plate.<ext>`` and ``<name>_alpha.png`` (optionally ``<name>_fgr.<ext>`` for the
  foreground metric), any common image extension.

Ground-truth alpha is cleaned before use: values within 2/255 of 0 or 1 are snapped (VideoMatte's
JPEG-coded alpha is 1/255 over the whole background, which would otherwise count as error).
Cases are downsized so the long side is at most ``max_size`` (1024 by default) to keep CPU runs
short.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.perturb import cover_crop
from ..data.subjects import read_alpha, read_rgb, resize_long
from ..errors import InputError
from ..io.image import IMAGE_SUFFIXES
from .metrics import METRICS, edge_foreground_mse, foreground_mse

SRC_NOISE = 0.01
DEFAULT_MAX_SIZE = 1024
SPLITS = ("holdout", "all")


@dataclass
class Case:
    """One benchmark image: frame, plate and the truth, float32 in [0, 1]."""

    name: str
    src: np.ndarray  # HxWx3
    plate: np.ndarray  # HxWx3
    pha: np.ndarray  # HxW ground-truth alpha
    fgr: np.ndarray | None = None  # HxWx3 ground-truth foreground, when known
    level: str = "triple"
    subject: str = ""
    background: str = ""
    group: str = "all"  # people | objects (synthetic cases), all (triples)

    @property
    def size(self) -> tuple[int, int]:
        return self.pha.shape[0], self.pha.shape[1]


# ------------------------------------------------------------------------------------ helpers


def case_seed(seed: int, *names: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the names (stable across runs and platforms)."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def clean_alpha(pha: np.ndarray, tol: float = 2.5 / 255) -> np.ndarray:
    """Snap values within ``tol`` of 0 or 1 (compression ringing in the ground truth)."""
    out = np.where(pha <= tol, 0.0, np.where(pha >= 1 - tol, 1.0, pha))
    return out.astype(np.float32)


def quantize(img: np.ndarray) -> np.ndarray:
    """Round to 8 bits, as every stored frame and plate is."""
    return (np.round(np.clip(img, 0, 1) * 255) / 255).astype(np.float32)


def _need_dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} folder {p} does not exist")
    if not p.is_dir():
        raise InputError(f"{what} {p} is not a folder")
    return p


# ------------------------------------------------------------------------------ synthetic cases


def select_subjects(gt_dir: str | Path, ids: Sequence[str] | None = None, split: str = "holdout") -> list[str]:
    """Subject ids to use: ``ids`` as given (checked), else the held-out ones in the folder (all if none is)."""
    from ..data.split import is_holdout_subject
    from ..data.subjects import list_subject_ids

    folder = _need_dir(gt_dir, "ground-truth")
    available = list_subject_ids(folder)
    if not available:
        raise InputError(f"no ground-truth subjects (<id>_pha.png) in {folder}")
    if ids:
        missing = [i for i in ids if i not in available]
        if missing:
            raise InputError(f"subject {missing[0]} not in {folder} (has: {', '.join(available[:8])}...)")
        return list(ids)
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    held = [i for i in available if is_holdout_subject(i)]
    return held if split == "holdout" and held else available


def select_backgrounds(folder: str | Path, split: str = "holdout") -> list[Path]:
    """Background images in the folder: the held-out ones when the split asks for them and any exist."""
    from ..data.split import is_holdout_background

    folder = _need_dir(folder, "backgrounds")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise InputError(f"no background images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    held = [p for p in paths if is_holdout_background(p.stem)]
    return held if split == "holdout" and held else paths


PEOPLE_PREFIXES = ("vm_", "p3m_")  # VideoMatte240K and P3M-10k: portraits; the rest are objects


def subject_group(subject_id: str) -> str:
    """'people' or 'objects': results are reported per group, since the two fail differently."""
    return "people" if subject_id.startswith(PEOPLE_PREFIXES) else "objects"


def make_case(
    subject_id: str,
    fgr: np.ndarray,
    pha: np.ndarray,
    background: np.ndarray,
    background_name: str,
    level: str,
    seed: int,
) -> Case:
    """Composite one subject over one background and make its plate at ``level`` (deterministic)."""
    from ..data.perturb import perturb_plate

    h, w = pha.shape
    bg = cover_crop(background, h, w, case_seed(seed, subject_id, background_name, "crop"))
    rng = case_seed(seed, subject_id, level)
    a = pha[..., None]
    src = quantize(a * fgr + (1 - a) * bg + rng.normal(0, SRC_NOISE, bg.shape).astype(np.float32))
    plate = quantize(perturb_plate(bg, rng, level))
    name = f"{subject_id}@{background_name}"
    return Case(name, src, plate, pha, fgr, level, subject_id, background_name, subject_group(subject_id))


def synthetic_cases(
    gt_dir: str | Path,
    backgrounds_dir: str | Path,
    *,
    subjects: Sequence[str] | None = None,
    levels: Sequence[str] = ("low", "high"),
    seed: int = 0,
    max_size: int | None = DEFAULT_MAX_SIZE,
    split: str = "holdout",
) -> Iterable[Case]:
    """Yield the synthetic cases subject by subject (one subject in memory at a time), levels inner."""
    from ..data.perturb import LEVELS
    from ..data.subjects import load_subject

    for level in levels:
        if level not in LEVELS:
            raise InputError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    ids = select_subjects(gt_dir, subjects, split)
    bgs = select_backgrounds(backgrounds_dir, split)
    for sid in ids:
        subject = load_subject(Path(gt_dir), sid, long_side=max_size or None)
        pha = clean_alpha(subject.pha)
        fgr = np.clip(subject.fgr, 0, 1).astype(np.float32)
        bg_path = bgs[int(case_seed(seed, sid, "background").integers(len(bgs)))]
        background = read_rgb(bg_path)
        for level in levels:
            yield make_case(sid, fgr, pha, background, bg_path.stem, level, seed)


# -------------------------------------------------------------------------------- triple cases


def _find(folder: Path, stem: str) -> Path | None:
    for ext in IMAGE_SUFFIXES:
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def list_triples(folder: str | Path) -> list[str]:
    """Names ``<name>`` that have a ``<name>_src.*`` in ``folder`` (sorted)."""
    folder = _need_dir(folder, "triples")
    names = sorted({p.name.rsplit("_src.", 1)[0] for p in folder.iterdir() if "_src." in p.name and p.is_file()})
    if not names:
        raise InputError(f"no <name>_src.<ext> images in {folder} (expected <name>_src, <name>_plate, <name>_alpha)")
    return names


def triple_cases(folder: str | Path, *, max_size: int | None = DEFAULT_MAX_SIZE) -> Iterable[Case]:
    """Yield cases from ``<name>_src``, ``<name>_plate``, ``<name>_alpha`` (+ optional ``<name>_fgr``) files."""
    folder = Path(folder)
    names = list_triples(folder)
    for name in names:  # check completeness up front: fail before any model runs
        for part in ("plate", "alpha"):
            if _find(folder, f"{name}_{part}") is None:
                raise InputError(f"{name}: {name}_src has no {name}_{part}.<ext> beside it in {folder}")
    for name in names:
        src = read_rgb(_find(folder, f"{name}_src"))  # type: ignore[arg-type]
        plate = read_rgb(_find(folder, f"{name}_plate"))  # type: ignore[arg-type]
        pha = read_alpha(_find(folder, f"{name}_alpha"))  # type: ignore[arg-type]
        fgr_path = _find(folder, f"{name}_fgr")
        fgr = read_rgb(fgr_path) if fgr_path else None
        for what, arr in (("plate", plate), ("alpha", pha), ("fgr", fgr)):
            if arr is not None and arr.shape[:2] != src.shape[:2]:
                raise InputError(f"{name}: {what} is {arr.shape[1]}x{arr.shape[0]}, src {src.shape[1]}x{src.shape[0]}")
        src, plate, pha = resize_long(src, max_size), resize_long(plate, max_size), resize_long(pha, max_size)
        fgr = resize_long(fgr, max_size) if fgr is not None else None
        yield Case(name, src, plate, clean_alpha(np.clip(pha, 0, 1)), fgr, "triple", name, "")


# ------------------------------------------------------------------------------------- running


Predictor = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def predictor(matter: Any) -> Predictor:
    """``(src, plate) -> (alpha HxW, fgr HxWx3)`` float32 arrays, for a Matter or a bare module.

    A :class:`cleanplate.api.Matter` is called through ``matte_tensor`` (pads and crops for the
    network); a bare ``nn.Module`` with MattingRefine's outputs is called directly (sizes that
    are not a multiple of 4 are padded by replication and cropped back).
    """
    import torch

    def to_tensor(img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()

    if hasattr(matter, "matte_tensor"):

        def run(src: np.ndarray, plate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            pha, fgr, _, _ = matter.matte_tensor(to_tensor(src), to_tensor(plate))
            return pha[0, 0].cpu().numpy(), fgr[0].permute(1, 2, 0).cpu().numpy()

        return run

    from ..padding import crop_to, pad_to_multiple

    def run_module(src: np.ndarray, plate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            s, size = pad_to_multiple(to_tensor(src), 4)
            b, _ = pad_to_multiple(to_tensor(plate), 4)
            out = matter(s, b)
            pha, fgr = crop_to(out[0], size), crop_to(out[1], size)
        return pha[0, 0].clamp(0, 1).numpy(), fgr[0].permute(1, 2, 0).clamp(0, 1).numpy()

    return run_module


def with_alignment(run: Predictor) -> Predictor:
    """``run`` with the plate first aligned onto the frame, as ``Matter.matte(..., align=True)`` does.

    Cases are 8-bit already (see :func:`quantize`), so the round trip through uint8 loses nothing.
    """
    import warnings

    from ..compose import to_uint8
    from ..plate.align import AlignmentWarning, align_plate

    def aligned(src: np.ndarray, plate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AlignmentWarning)  # falls back to the plate as it is
            plate = align_plate(to_uint8(plate), to_uint8(src)).astype(np.float32) / 255
        return run(src, plate)

    return aligned


def score(pred_pha: np.ndarray, pred_fgr: np.ndarray | None, case: Case) -> dict[str, float]:
    """All metrics for one prediction (whole image)."""
    out = {name: fn(pred_pha, case.pha) for name, fn in METRICS.items()}
    if case.fgr is not None and pred_fgr is not None:
        out["fgr_mse"] = foreground_mse(pred_fgr, case.fgr, case.pha)
        out["fgr_edge"] = edge_foreground_mse(pred_fgr, case.fgr, case.pha)
    return out


@dataclass
class CaseResult:
    """What is kept of one case after it ran: identity, size, metrics and seconds per model."""

    name: str
    level: str
    subject: str
    background: str
    size: tuple[int, int]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # model -> metric -> value
    group: str = "all"
    seconds: dict[str, float] = field(default_factory=dict)


Predictions = dict[str, tuple[np.ndarray, np.ndarray]]  # model -> (alpha, fgr)


def evaluate(
    predictors: dict[str, Predictor],
    cases: Iterable[Case],
    *,
    on_case: Callable[[Case, CaseResult, Predictions], None] | None = None,
) -> list[CaseResult]:
    """Run every predictor on every case.

    Only metrics are kept; ``on_case(case, result, predictions)`` sees the images as each case
    finishes (to draw a picture grid or print progress) and may keep what it needs.
    """
    results = []
    for case in cases:
        res = CaseResult(case.name, case.level, case.subject, case.background, case.size, group=case.group)
        predictions: Predictions = {}
        for name, run in predictors.items():
            t0 = time.perf_counter()
            pha, fgr = run(case.src, case.plate)
            res.seconds[name] = time.perf_counter() - t0
            pha = np.asarray(pha, dtype=np.float32)
            if pha.shape != case.pha.shape:
                raise InputError(f"model {name} returned alpha {pha.shape} for a {case.pha.shape} case")
            fgr = None if fgr is None else np.asarray(fgr, dtype=np.float32)
            res.metrics[name] = score(pha, fgr, case)
            predictions[name] = (pha, fgr)
        results.append(res)
        if on_case is not None:
            on_case(case, res, predictions)
    return results


ORACLE = "oracle"


def pixel_oracle(predictions: Predictions, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Per pixel, the alpha of the model closest to the true alpha (and that model's foreground).

    Not a method (it reads the truth): the bound on what choosing between these models pixel by
    pixel could reach. When it is far below every model, their errors are complementary.
    """
    names = list(predictions)
    alphas = np.stack([predictions[n][0] for n in names])
    pick = np.abs(alphas - truth[None]).argmin(0)[None]
    pha = np.take_along_axis(alphas, pick, 0)[0]
    fgrs = [predictions[n][1] for n in names]
    if any(f is None for f in fgrs):
        return pha, None
    return pha, np.take_along_axis(np.stack(fgrs), pick[..., None], 0)[0]  # type: ignore[arg-type]


def add_oracle(case: Case, result: CaseResult, predictions: Predictions, name: str = ORACLE) -> None:
    """Score the :func:`pixel_oracle` of the models in ``predictions`` as one more model, ``name``."""
    models = {k: v for k, v in predictions.items() if k != name}
    if len(models) < 2:
        raise InputError("the per-pixel oracle needs at least two models")
    pha, fgr = pixel_oracle(models, case.pha)
    result.metrics[name] = score(pha, fgr, case)
    predictions[name] = (pha, fgr)


def select(results: Sequence[CaseResult], level: str | None = None, group: str | None = None) -> list[CaseResult]:
    """The results of one level and/or one group (None: any)."""
    return [r for r in results if (level is None or r.level == level) and (group is None or r.group == group)]


def mean_metrics(
    results: Sequence[CaseResult], model: str, level: str | None = None, group: str | None = None
) -> dict[str, float]:
    """Mean of each metric over the cases (of one level and/or group, if given)."""
    rows = [r.metrics[model] for r in select(results, level, group) if model in r.metrics]
    if not rows:
        return {}
    keys = [k for k in rows[0] if all(k in row for row in rows)]
    return {k: float(np.mean([row[k] for row in rows])) for k in keys}


def worst_case(results: Sequence[CaseResult], model: str, metric: str = "mad") -> CaseResult | None:
    """The case where ``model`` scored worst on ``metric``."""
    rows = [r for r in results if metric in r.metrics.get(model, {})]
    return max(rows, key=lambda r: r.metrics[model][metric]) if rows else None


def case_ratios(
    results: Sequence[CaseResult], model: str, reference: str, metric: str = "mad", floor: float = 1e-3
) -> list[tuple[CaseResult, float]]:
    """Per case, ``model``'s metric over ``reference``'s, worst first.

    ``floor`` (MAD 1.0 x 1e-3) keeps near-perfect reference cases from turning noise into huge ratios.
    """
    out = []
    for r in results:
        a, b = r.metrics.get(model, {}).get(metric), r.metrics.get(reference, {}).get(metric)
        if a is not None and b is not None:
            out.append((r, a / max(b, floor)))
    return sorted(out, key=lambda item: -item[1])
