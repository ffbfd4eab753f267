"""Benchmark reports: a text table, a JSON document and a picture grid.

Table units follow the matting literature: SAD, Grad and Conn are sums divided by 1000; MSE,
MAD and fgr MSE are means multiplied by 1000 (so "MAD 12.3" means a mean absolute alpha error
of 0.0123). The JSON keeps the raw values of :mod:`cleanplate.eval.metrics` (SAD/Grad/Conn
divided by 1000, the means unscaled) and says so in its ``units`` entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from .benchmark import Case, CaseResult, Predictions, case_ratios, mean_metrics, select, worst_case

# key, header, factor applied for the table
COLUMNS = (
    ("sad", "SAD", 1.0),
    ("mse", "MSE", 1e3),
    ("mad", "MAD", 1e3),
    ("grad", "Grad", 1.0),
    ("conn", "Conn", 1.0),
    ("fgr_mse", "fgrMSE", 1e3),
    ("fgr_edge", "fgrEdge", 1e3),
)
OUTLIER_RATIO = 1.5  # a case this much worse than the reference is a failure, whatever the mean says
UNITS = {
    "sad": "sum |a - gt| / 1000",
    "mse": "mean (a - gt)^2",
    "mad": "mean |a - gt|",
    "grad": "sum (|grad a| - |grad gt|)^2 / 1000, Gaussian derivative sigma 1.4",
    "conn": "connectivity error (Rhemann et al. 2009) / 1000, step 0.1",
    "fgr_mse": "mean (F - F_gt)^2 over pixels with gt alpha > 0",
    "fgr_edge": "sum a_gt (F - F_gt)^2 / sum a_gt within 6 px of the subject's edge or soft alpha",
    "table": "SAD, Grad, Conn as above; MSE, MAD, fgrMSE multiplied by 1000",
}


def _fmt(values: dict[str, float]) -> list[str]:
    return [f"{values[k] * f:8.2f}" if k in values else f"{'-':>8}" for k, _, f in COLUMNS]


def levels_of(results: Sequence[CaseResult]) -> list[str]:
    seen: list[str] = []
    for r in results:
        if r.level not in seen:
            seen.append(r.level)
    return seen


def groups_of(results: Sequence[CaseResult]) -> list[str]:
    seen: list[str] = []
    for r in results:
        if r.group not in seen:
            seen.append(r.group)
    return seen


def table(
    results: Sequence[CaseResult], models: Sequence[str], *, per_case: bool = True, reference: str | None = None
) -> str:
    """Per-case rows (optional), mean rows per level, per group and overall, the worst case per model
    and level, and with ``reference`` the per-case MAD ratios to that model."""
    labels = [f"mean ({lv}, {len(results)})" for lv in [*levels_of(results), "all"]]
    width = max([len(r.name) for r in results] + [len(x) for x in labels] + [12])
    tags = [f"{m}/{models[0]}" for m in models[1:]]  # ratio rows name both models
    mwidth = max([len(m) for m in [*models, *tags]] + [5])
    header = f"{'case':<{width}}  {'level':<7} {'model':<{mwidth}}" + "".join(f"{h:>9}" for _, h, _ in COLUMNS)
    lines = [header, "-" * len(header)]
    if per_case:
        for r in results:
            for m in models:
                row = f"{r.name:<{width}}  {r.level:<7} {m:<{mwidth}} " + " ".join(_fmt(r.metrics.get(m, {})))
                lines.append(row)
        lines.append("-" * len(header))
    levels = levels_of(results)
    groups = groups_of(results)
    rows = [(lv, lv, None) for lv in levels] + ([("all", None, None)] if len(levels) > 1 else [])
    if len(groups) > 1:
        rows += [(f"{lv}, {g}", lv, g) for lv in [*levels, None] for g in groups if len(levels) > 1 or lv is not None]
    for label, level, group in rows:
        label = label if label is not None else "all"
        tag_level = level or "all"
        picked = select(results, level, group)
        if not picked:
            continue
        for m in models:
            row = f"{f'mean ({label}, {len(picked)})':<{width}}  {tag_level:<7} {m:<{mwidth}} "
            lines.append(row + " ".join(_fmt(mean_metrics(results, m, level, group))))
        if len(models) > 1:
            base = mean_metrics(results, models[0], level, group)
            for m in models[1:]:
                other = mean_metrics(results, m, level, group)
                ratio = {k: other[k] / base[k] for k in other if k in base and base[k] > 0}
                cells = [f"{ratio[k]:8.2f}" if k in ratio else f"{'-':>8}" for k, _, _ in COLUMNS]
                tag = f"{m}/{models[0]}"
                lines.append(f"{f'ratio ({label})':<{width}}  {tag_level:<7} {tag:<{mwidth}} " + " ".join(cells))
    lines.append("-" * len(header))
    for level in levels:
        for m in models:
            worst = worst_case(select(results, level), m)
            if worst is not None:
                lines.append(
                    f"{'worst: ' + worst.name:<{width}}  {level:<7} {m:<{mwidth}} " + " ".join(_fmt(worst.metrics[m]))
                )
    if reference is not None:
        lines.append("")
        lines.extend(reference_lines(results, models, reference))
    return "\n".join(lines)


def reference_summary(results: Sequence[CaseResult], model: str, reference: str) -> dict[str, Any]:
    """Per-case MAD ratios of ``model`` to ``reference``: worst, median, and how many exceed 1.5x."""
    ratios = case_ratios(results, model, reference)
    if not ratios:
        return {}
    values = [v for _, v in ratios]
    return {
        "reference": reference,
        "worst_ratio": values[0],
        "worst_case": f"{ratios[0][0].name} [{ratios[0][0].level}]",
        "median_ratio": float(np.median(values)),
        "cases_over": sum(v > OUTLIER_RATIO for v in values),
        "over_threshold": OUTLIER_RATIO,
        "cases": len(values),
        "ratios": {f"{r.name} [{r.level}]": v for r, v in ratios},
    }


def reference_lines(results: Sequence[CaseResult], models: Sequence[str], reference: str) -> list[str]:
    """One line per model: its worst per-case MAD ratio to the reference and the count above 1.5x."""
    out = []
    for m in models:
        if m == reference:
            continue
        info = reference_summary(results, m, reference)
        if not info:
            continue
        out.append(
            f"MAD {m}/{reference} per case: worst {info['worst_ratio']:.2f} ({info['worst_case']}), "
            f"median {info['median_ratio']:.2f}, {info['cases_over']} of {info['cases']} cases above "
            f"{OUTLIER_RATIO:g}x"
        )
    return out


def to_json(
    results: Sequence[CaseResult],
    models: Sequence[str],
    config: dict[str, Any],
    model_info: dict[str, Any],
    reference: str | None = None,
) -> dict[str, Any]:
    """The whole run as a JSON-able dict: config, units, per-model means (overall, per level, per
    group), the worst case per level, ratios to the reference model, cases."""
    levels = levels_of(results)
    groups = groups_of(results)
    summary = {}
    for m in models:
        secs = [r.seconds[m] for r in results if m in r.seconds]
        worst = {lv: worst_case(select(results, lv), m) for lv in levels}
        summary[m] = {
            "info": model_info.get(m, {}),
            "mean": mean_metrics(results, m),
            "by_level": {lv: mean_metrics(results, m, lv) for lv in levels},
            "by_group": {
                g: {"all": mean_metrics(results, m, None, g), **{lv: mean_metrics(results, m, lv, g) for lv in levels}}
                for g in groups
            },
            "worst": {lv: {"case": w.name, **w.metrics[m]} for lv, w in worst.items() if w is not None},
            "vs_reference": reference_summary(results, m, reference) if reference and m != reference else None,
            "cases": sum(1 for r in results if m in r.metrics),
            "seconds_per_case": float(np.mean(secs)) if secs else None,
        }
    return {
        "format": "cleanplate-eval",
        "version": 1,
        "config": config,
        "units": UNITS,
        "models": summary,
        "cases": [
            {
                "name": r.name,
                "level": r.level,
                "subject": r.subject,
                "background": r.background,
                "group": r.group,
                "size": list(r.size),
                "metrics": r.metrics,
                "seconds": r.seconds,
            }
            for r in results
        ],
    }


# ----------------------------------------------------------------------------------------- grid


class GridBuilder:
    """Collects one thumbnail row per case: src | plate | gt alpha | (pred alpha | composite) per model.

    Rows are kept small (``height`` px) so hundreds of cases stay cheap; at most ``max_rows`` rows
    are drawn (the first ones).
    """

    def __init__(self, models: Sequence[str], height: int = 160, max_rows: int = 40) -> None:
        self.models = list(models)
        self.height = height
        self.max_rows = max_rows
        self.rows: list[np.ndarray] = []
        self.labels: list[str] = []

    def _thumb(self, img: np.ndarray, width: int) -> np.ndarray:
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        return cv2.resize(np.clip(img, 0, 1).astype(np.float32), (width, self.height), interpolation=cv2.INTER_AREA)

    def add(self, case: Case, result: CaseResult, predictions: Predictions) -> None:
        if len(self.rows) >= self.max_rows:
            return
        h, w = case.size
        width = max(1, round(w * self.height / h))
        checker = checkerboard(h, w)
        tiles = [case.src, case.plate, case.pha]
        for m in self.models:
            pha, fgr = predictions[m]
            fg = fgr if fgr is not None else case.src
            tiles += [pha, fg * pha[..., None] + checker * (1 - pha[..., None])]
        row = np.concatenate([self._thumb(t, width) for t in tiles], axis=1)
        mad = {m: result.metrics[m]["mad"] * 1e3 for m in self.models}
        self.rows.append(row)
        self.labels.append(f"{case.name} [{case.level}]  " + "  ".join(f"{m}: MAD {v:.1f}" for m, v in mad.items()))

    def image(self) -> np.ndarray:
        """uint8 RGB picture: a header row of column names, then one labelled strip per case."""
        if not self.rows:
            return np.zeros((1, 1, 3), np.uint8)
        width = max(r.shape[1] for r in self.rows)
        names = ["src", "plate", "gt alpha"] + [f"{k} ({m})" for m in self.models for k in ("alpha", "comp")]
        strips = [_label(width, "   |   ".join(names))]
        for row, text in zip(self.rows, self.labels, strict=True):
            pixels = np.zeros((row.shape[0], width, 3), np.uint8)
            pixels[:, : row.shape[1]] = (row * 255 + 0.5).astype(np.uint8)
            strips += [_label(width, text), pixels]
        return np.concatenate(strips, axis=0)


def checkerboard(h: int, w: int, cell: int = 16) -> np.ndarray:
    """Grey float H×W×3 checks: shows through where alpha is below 1."""
    yy, xx = np.mgrid[0:h, 0:w]
    board = (((yy // cell) + (xx // cell)) % 2).astype(np.float32) * 0.25 + 0.6
    return np.repeat(board[..., None], 3, axis=2)


def _label(width: int, text: str, height: int = 18) -> np.ndarray:
    strip = np.full((height, width, 3), 40, np.uint8)
    cv2.putText(strip, text, (4, height - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return strip
