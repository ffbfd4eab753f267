"""``cleanplate eval`` end to end on tiny cases with the classical model, and one line per user mistake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cleanplate.cli.app import main


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def assert_one_line_error(code: int, err: str, needle: str) -> None:
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0], err
    assert "Traceback" not in err


def test_synthetic_run_writes_json_and_grid(capsys, gt_dirs, tmp_path: Path) -> None:
    gt, bgs = gt_dirs
    out_json, out_png = tmp_path / "res.json", tmp_path / "grid.png"
    code, out, err = run(
        capsys, "eval", "-m", "classical", "--gt-dir", gt, "--backgrounds", bgs, "--split", "all",
        "--levels", "low", "--json", out_json, "--grid", out_png,
    )  # fmt: skip
    assert code == 0, err
    assert "mean (low, 2)" in out and "classical" in out
    doc = json.loads(out_json.read_text())
    assert doc["config"]["complete"] is True and doc["config"]["levels"] == ["low"]
    assert len(doc["cases"]) == 2
    mean = doc["models"]["classical"]["mean"]
    assert set(mean) == {"sad", "mse", "mad", "grad", "conn", "fgr_mse", "fgr_edge"}
    assert mean["mad"] < 0.05  # clean synthetic disks: the keyer is nearly exact
    assert out_png.stat().st_size > 1000

    # no silent overwrite; --force replaces
    code, _, err = run(capsys, "eval", "-m", "classical", "--gt-dir", gt, "--backgrounds", bgs, "--json", out_json)
    assert_one_line_error(code, err, "already exists")
    code, _, err = run(
        capsys, "eval", "-m", "classical", "--gt-dir", gt, "--backgrounds", bgs, "--split", "all",
        "--levels", "high", "--json", out_json, "--force", "--summary",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out_json.read_text())["config"]["levels"] == ["high"]
    assert json.loads(out_json.read_text())["config"]["align"] is False

    code, _, err = run(
        capsys, "eval", "-m", "classical", "--gt-dir", gt, "--backgrounds", bgs, "--split", "all",
        "--levels", "high", "--json", out_json, "--force", "--summary", "--align",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["config"]["align"] is True and doc["models"]["classical"]["mean"]["mad"] < 0.05


def test_triples_compare_two_models(capsys, triples_dir: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "t.json"
    code, out, err = run(
        capsys, "eval", "-m", "classical", "-m", "classical", "--triples", triples_dir, "--json", out_json
    )
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert list(doc["models"]) == ["classical", "classical#2"]
    assert "classical#2/classical" in out  # the ratio row of a side-by-side comparison
    one, two = (case["metrics"]["classical"] for case in doc["cases"])
    assert "fgr_mse" in one and "fgr_mse" not in two  # only 'one' has a ground-truth foreground


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--gt-dir", "{tmp}/missing", "--backgrounds", "{bgs}"], "does not exist"),
        (["--gt-dir", "{tmp}/empty", "--backgrounds", "{bgs}"], "no ground-truth subjects"),
        (["--gt-dir", "{gt}", "--backgrounds", "{tmp}/empty"], "no background images"),
        (["--triples", "{tmp}/empty"], "no <name>_src"),
        (["--gt-dir", "{gt}"], "give --gt-dir and --backgrounds"),
        (["--triples", "{tmp}/empty", "--gt-dir", "{gt}"], "not both"),
        (["--gt-dir", "{gt}", "--backgrounds", "{bgs}", "--levels", "extreme"], "unknown level"),
        (["--gt-dir", "{gt}", "--backgrounds", "{bgs}", "--subjects", "nobody"], "subject nobody"),
        (["--gt-dir", "{gt}", "--backgrounds", "{bgs}", "--json", "{tmp}/no/such/dir/x.json"], "does not exist"),
        (["-m", "{tmp}/missing.pth", "--gt-dir", "{gt}", "--backgrounds", "{bgs}"], "missing.pth"),
    ],
)
def test_user_mistakes_are_one_line(capsys, gt_dirs, tmp_path: Path, args: list[str], needle: str) -> None:
    gt, bgs = gt_dirs
    (tmp_path / "empty").mkdir()
    filled = [a.format(tmp=tmp_path, gt=gt, bgs=bgs) for a in args]
    if "-m" not in filled:
        filled = ["-m", "classical", *filled]
    code, _, err = run(capsys, "eval", *filled)
    assert_one_line_error(code, err, needle)


def test_interrupted_run_keeps_finished_cases(capsys, gt_dirs, tmp_path: Path, monkeypatch) -> None:
    from cleanplate.eval import benchmark

    real = benchmark.evaluate

    def stop_after_first(predictors, cases, *, on_case=None):
        def first_then_stop(case, result, predictions):
            on_case(case, result, predictions)
            raise KeyboardInterrupt

        return real(predictors, cases, on_case=first_then_stop)

    monkeypatch.setattr(benchmark, "evaluate", stop_after_first)
    gt, bgs = gt_dirs
    out_json = tmp_path / "partial.json"
    code, _, err = run(
        capsys, "eval", "-m", "classical", "--gt-dir", gt, "--backgrounds", bgs, "--split", "all", "--json", out_json
    )
    assert code == 130, err
    doc = json.loads(out_json.read_text())
    assert doc["config"]["complete"] is False and len(doc["cases"]) == 1
    assert "1 of 4 cases" in err


def test_reference_adds_the_model_and_reports_per_case_ratios(capsys, gt_dirs, tmp_path: Path) -> None:
    from cleanplate.models.checkpoint import save_checkpoint
    from cleanplate.models.guided import GuidedMatting

    gt, bgs = gt_dirs
    net = save_checkpoint(GuidedMatting(), tmp_path / "net.pt")
    out_json = tmp_path / "res.json"
    code, out, err = run(
        capsys, "eval", "-m", net, "--reference", "classical", "--gt-dir", gt, "--backgrounds", bgs,
        "--split", "all", "--levels", "low", "--summary", "--json", out_json,
    )  # fmt: skip
    assert code == 0, err
    assert "MAD net.pt/classical per case: worst" in out
    assert "worst: " in out
    doc = json.loads(out_json.read_text())
    assert doc["config"]["reference"] == "classical"
    assert set(doc["models"]) == {"net.pt", "classical"}
    assert doc["models"]["net.pt"]["vs_reference"]["cases"] == 2


def test_oracle_adds_the_per_pixel_best_of_the_models(capsys, gt_dirs, tmp_path: Path) -> None:
    from cleanplate.models.checkpoint import save_checkpoint
    from cleanplate.models.guided import GuidedMatting

    gt, bgs = gt_dirs
    net = save_checkpoint(GuidedMatting(), tmp_path / "net.pt")
    out_json = tmp_path / "res.json"
    code, out, err = run(
        capsys, "eval", "-m", net, "-m", "classical", "--oracle", "--gt-dir", gt, "--backgrounds", bgs,
        "--split", "all", "--levels", "low", "--summary", "--json", out_json, "--reference", "classical",
        "--grid", tmp_path / "grid.png",
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "grid.png").stat().st_size > 0  # a column for the oracle too
    assert "oracle/net.pt" in out and "MAD oracle/classical per case" in out
    doc = json.loads(out_json.read_text())
    assert doc["config"]["oracle"] is True and doc["models"]["oracle"]["info"]["of"] == "net.pt,classical"
    for case in doc["cases"]:
        m = case["metrics"]
        assert m["oracle"]["mad"] <= min(m["net.pt"]["mad"], m["classical"]["mad"]) + 1e-9


def test_oracle_of_one_model_is_a_one_line_error(capsys, gt_dirs) -> None:
    gt, bgs = gt_dirs
    code, _, err = run(capsys, "eval", "-m", "classical", "--oracle", "--gt-dir", gt, "--backgrounds", bgs)
    assert_one_line_error(code, err, "--oracle needs two or more models")
