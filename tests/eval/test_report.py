"""Report rows: per group, worst case, per-case ratios to a reference model."""

from __future__ import annotations

import pytest

from cleanplate.eval import report
from cleanplate.eval.benchmark import CaseResult, case_ratios, mean_metrics, subject_group, worst_case


def _result(name: str, level: str, group: str, mads: dict[str, float]) -> CaseResult:
    r = CaseResult(name, level, name, "bg", (10, 10), group=group)
    r.metrics = {m: {"mad": v, "sad": v} for m, v in mads.items()}
    return r


RESULTS = [
    _result("p3m_a", "low", "people", {"net": 0.010, "classical": 0.020}),
    _result("am_b", "low", "objects", {"net": 0.030, "classical": 0.010}),
    _result("am_c", "low", "objects", {"net": 0.002, "classical": 0.0001}),
    _result("p3m_a", "high", "people", {"net": 0.040, "classical": 0.020}),
]


def test_subject_groups() -> None:
    assert subject_group("vm_valid_00011") == "people"
    assert subject_group("p3m_p_0a78cf02") == "people"
    assert subject_group("am_GT26") == "objects"


def test_means_per_group_and_level() -> None:
    assert mean_metrics(RESULTS, "net", "low", "objects")["mad"] == pytest.approx(0.016)
    assert mean_metrics(RESULTS, "net", None, "people")["mad"] == pytest.approx(0.025)
    assert mean_metrics(RESULTS, "net", "high", "objects") == {}


def test_worst_case_and_ratios_worst_first() -> None:
    assert worst_case(RESULTS, "net").name == "p3m_a" and worst_case(RESULTS, "net").level == "high"
    ratios = case_ratios(RESULTS, "net", "classical")
    # am_c: 0.002 / max(0.0001, floor 0.001) = 2.0, not 20: near-perfect reference cases are floored
    assert [round(v, 3) for _, v in ratios] == [3.0, 2.0, 2.0, 0.5]


def test_table_has_group_worst_and_reference_lines() -> None:
    text = report.table(RESULTS, ["net", "classical"], per_case=False, reference="classical")
    assert "mean (low, people, 1)" in text and "mean (low, objects, 2)" in text
    assert "worst: am_b" in text  # worst net case at low
    assert "MAD net/classical per case: worst 3.00 (am_b [low])" in text
    assert "3 of 4 cases above 1.5x" in text


def test_json_has_groups_worst_and_reference() -> None:
    doc = report.to_json(RESULTS, ["net", "classical"], {}, {}, "classical")
    net = doc["models"]["net"]
    assert net["by_group"]["objects"]["low"]["mad"] == pytest.approx(0.016)
    assert net["worst"]["high"]["case"] == "p3m_a"
    assert net["vs_reference"]["cases_over"] == 3
    assert doc["models"]["classical"]["vs_reference"] is None
    assert {c["group"] for c in doc["cases"]} == {"people", "objects"}
