"""Benchmark cases are deterministic, honest about their inputs, and scored by every model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cleanplate.errors import InputError
from cleanplate.eval import benchmark as B
from cleanplate.eval import report


def _cases(gt_dirs, **kw) -> list[B.Case]:
    gt, bgs = gt_dirs
    kw.setdefault("split", "all")
    return list(B.synthetic_cases(gt, bgs, **kw))


def test_same_seed_same_arrays(gt_dirs) -> None:
    first = _cases(gt_dirs, levels=("low", "high"), seed=3)
    again = _cases(gt_dirs, levels=("low", "high"), seed=3)
    expected = [("ball", "low"), ("ball", "high"), ("ring", "low"), ("ring", "high")]
    assert [(c.subject, c.level) for c in first] == expected
    for a, b in zip(first, again, strict=True):
        assert (a.name, a.level) == (b.name, b.level)
        for x, y in ((a.src, b.src), (a.plate, b.plate), (a.pha, b.pha), (a.fgr, b.fgr)):
            np.testing.assert_array_equal(x, y)


def test_other_seed_other_plates(gt_dirs) -> None:
    a = _cases(gt_dirs, levels=("high",), seed=0)[0]
    b = _cases(gt_dirs, levels=("high",), seed=1)[0]
    assert not np.array_equal(a.plate, b.plate)


def test_a_case_does_not_depend_on_what_else_is_selected(gt_dirs) -> None:
    both = {(c.subject, c.level): c for c in _cases(gt_dirs, levels=("low", "high"))}
    alone = _cases(gt_dirs, subjects=["ring"], levels=("high",))
    assert len(alone) == 1
    np.testing.assert_array_equal(alone[0].plate, both["ring", "high"].plate)
    np.testing.assert_array_equal(alone[0].src, both["ring", "high"].src)


def test_levels_make_plates_progressively_harder(gt_dirs) -> None:
    cases = _cases(gt_dirs, subjects=["ball"], levels=("low", "high"))
    low, high = cases
    assert low.background == high.background  # the same scene at both levels
    bg_mask = low.pha == 0
    err_low = np.abs(low.src - low.plate)[bg_mask].mean()
    err_high = np.abs(high.src - high.plate)[bg_mask].mean()
    assert err_low < 0.015  # noise only (sigma 0.01 in both shots, 8-bit rounding)
    assert err_high > 2 * err_low
    # the frame is the 8-bit composite of the truth
    assert np.all(np.abs(low.src * 255 - np.round(low.src * 255)) < 1e-3)


def test_cases_respect_max_size_and_clean_alpha(gt_dirs) -> None:
    case = _cases(gt_dirs, levels=("low",), max_size=48)[0]
    assert max(case.size) == 48 and case.src.shape[:2] == case.size == case.plate.shape[:2]
    assert B.clean_alpha(np.float32([0.004, 0.5, 0.996])).tolist() == [0.0, 0.5, 1.0]


def test_holdout_split_uses_held_out_ids_when_present(gt_dirs) -> None:
    gt, bgs = gt_dirs
    assert B.select_subjects(gt, split="holdout") == ["ball", "ring"]  # none held out here: all
    (gt / "am_GT99_pha.png").write_bytes((gt / "ball_pha.png").read_bytes())
    (gt / "am_GT99_fgr.png").write_bytes((gt / "ball_fgr.png").read_bytes())
    assert B.select_subjects(gt, split="holdout") == ["am_GT99"]
    assert "ball" in B.select_subjects(gt, split="all")


@pytest.mark.parametrize(
    ("kind", "needle"),
    [("missing", "does not exist"), ("empty", "no ground-truth subjects"), ("unknown_id", "subject nope")],
)
def test_bad_folders_are_one_line_input_errors(gt_dirs, tmp_path: Path, kind: str, needle: str) -> None:
    gt, bgs = gt_dirs
    empty = tmp_path / "empty"
    empty.mkdir()
    args = {"missing": (tmp_path / "nope", bgs, None), "empty": (empty, bgs, None), "unknown_id": (gt, bgs, ["nope"])}
    folder, backgrounds, ids = args[kind]
    with pytest.raises(InputError, match=needle) as exc:
        list(B.synthetic_cases(folder, backgrounds, subjects=ids, split="all"))
    assert "\n" not in str(exc.value)


def test_unknown_level_and_empty_backgrounds(gt_dirs, tmp_path: Path) -> None:
    gt, _ = gt_dirs
    with pytest.raises(InputError, match="unknown level"):
        list(B.synthetic_cases(gt, gt_dirs[1], levels=("extreme",)))
    (tmp_path / "nobg").mkdir()
    with pytest.raises(InputError, match="no background images"):
        list(B.synthetic_cases(gt, tmp_path / "nobg"))


def test_triples_are_read_and_checked(triples_dir: Path) -> None:
    cases = list(B.triple_cases(triples_dir))
    assert [c.name for c in cases] == ["one", "two"]
    assert cases[0].fgr is not None and cases[1].fgr is None
    assert cases[0].pha.max() == 1.0 and cases[0].src.shape == (48, 64, 3)
    (triples_dir / "two_plate.jpg").unlink()
    with pytest.raises(InputError, match="two_plate"):
        list(B.triple_cases(triples_dir))


def test_evaluate_scores_each_model_and_reports(gt_dirs) -> None:
    cases = _cases(gt_dirs, levels=("low",))
    perfect = {c.name: c for c in cases}

    def oracle(src, plate):
        case = next(c for c in perfect.values() if np.array_equal(c.src, src))
        return case.pha, case.fgr

    def empty(src, plate):
        return np.zeros(src.shape[:2], np.float32), src

    results = B.evaluate({"oracle": oracle, "empty": empty}, cases)
    assert all(r.metrics["oracle"]["mad"] == 0.0 for r in results)
    assert all(r.metrics["empty"]["mad"] > 0.05 for r in results)
    text = report.table(results, ["oracle", "empty"])
    assert "mean (low, 2)" in text and "empty/oracle" not in text.split("\n")[0]
    doc = report.to_json(results, ["oracle", "empty"], {"seed": 0}, {})
    assert doc["models"]["oracle"]["mean"]["sad"] == 0.0
    assert doc["models"]["empty"]["by_level"]["low"]["mad"] == pytest.approx(
        np.mean([r.metrics["empty"]["mad"] for r in results])
    )
    assert {c["name"] for c in doc["cases"]} == {c.name for c in cases}


def test_with_alignment_hands_models_a_plate_lined_up_with_the_frame() -> None:
    import cv2

    from tests.ground_truth import disk, texture

    h, w = 240, 320
    bg = B.quantize(texture(h + 40, w + 40, seed=4))
    frame_bg = bg[20 : 20 + h, 20 : 20 + w]
    plate = bg[26 : 26 + h, 16 : 16 + w]  # the camera moved by (4, -6) px
    a = disk(h, w, 120, 160, 50)
    src = B.quantize(a[..., None] * 0.9 + (1 - a[..., None]) * frame_bg)
    seen = []

    def model(s: np.ndarray, p: np.ndarray):
        seen.append(p)
        return np.zeros(s.shape[:2], np.float32), None

    B.with_alignment(model)(src, plate)
    background = cv2.erode((a == 0).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    background[:10], background[-10:], background[:, :10], background[:, -10:] = False, False, False, False
    before = np.abs(plate - frame_bg)[background].mean()
    after = np.abs(seen[0] - frame_bg)[background].mean()
    assert seen[0].dtype == np.float32 and seen[0].shape == src.shape
    assert after < before / 4, (before, after)


def test_pixel_oracle_takes_each_pixel_from_the_model_closest_to_the_truth() -> None:
    truth = np.array([[0.0, 1.0], [0.5, 0.2]], np.float32)
    a = np.array([[0.1, 0.0], [0.5, 0.9]], np.float32)
    b = np.array([[0.3, 0.8], [0.0, 0.25]], np.float32)
    fa, fb = np.zeros((2, 2, 3), np.float32), np.ones((2, 2, 3), np.float32)
    pha, fgr = B.pixel_oracle({"a": (a, fa), "b": (b, fb)}, truth)
    assert np.allclose(pha, [[0.1, 0.8], [0.5, 0.25]])
    assert np.array_equal(fgr[..., 0], [[0, 1], [0, 1]]) and fgr.shape == (2, 2, 3)
    assert B.pixel_oracle({"a": (a, None), "b": (b, fb)}, truth)[1] is None


def test_add_oracle_scores_no_worse_than_any_model(gt_dirs) -> None:
    cases = _cases(gt_dirs, levels=("low",))

    def empty(src, plate):
        return np.zeros(src.shape[:2], np.float32), src

    def full(src, plate):
        return np.ones(src.shape[:2], np.float32), src

    seen = []
    results = B.evaluate(
        {"empty": empty, "full": full}, cases, on_case=lambda c, r, p: (B.add_oracle(c, r, p), seen.append(set(p)))
    )
    for r in results:
        assert r.metrics["oracle"]["mad"] <= min(r.metrics["empty"]["mad"], r.metrics["full"]["mad"]) + 1e-9
        assert r.metrics["oracle"]["mad"] < r.metrics["empty"]["mad"]  # the subject's interior comes from 'full'
    assert seen[0] == {"empty", "full", "oracle"}
    with pytest.raises(InputError, match="at least two"):
        B.add_oracle(cases[0], results[0], {"empty": empty(cases[0].src, None)})
