"""``cleanplate batch`` as a user runs it (subprocesses): exit codes, one-line errors, Ctrl-C and resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.batch.conftest import ledger_rows, make_shots

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.update(extra)
    return env


def cli(*args, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cleanplate", "batch", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(**env),
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cleanplate: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_success_then_skip_then_failure_exit_codes(tmp_path: Path) -> None:
    plate = make_shots(tmp_path / "in", n=3)
    out = tmp_path / "out"
    first = cli(tmp_path / "in", "-o", out, "--plate", plate, "--model", "classical", "--save", "rgba,alpha")
    assert first.returncode == 0, first.stderr
    assert "3 done, 0 failed, 0 skipped" in first.stderr
    assert sorted(p.name for p in out.glob("*.png")) == [f"shot{i}{s}.png" for i in range(3) for s in ("", "_alpha")]
    again = cli(tmp_path / "in", "-o", out, "--plate", plate, "--model", "classical", "--save", "rgba,alpha")
    assert again.returncode == 0 and "0 done, 0 failed, 3 skipped" in again.stderr
    (tmp_path / "in" / "shot1.png").write_bytes(b"not a png at all")
    (out / "shot1.png").unlink()
    bad = cli(tmp_path / "in", "-o", out, "--plate", plate, "--model", "classical", "--save", "rgba,alpha")
    assert bad.returncode == 1, bad.stderr
    assert "0 done, 1 failed, 2 skipped" in bad.stderr and "failed: shot1.png: " in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["missing_dir", "-o", "out"], ["missing_dir: no such file or folder"]),
        (["in", "-o", "out", "--plate", "nope.png"], ["nope.png: no such file"]),
        (["in", "-o", "out", "--plate", "in/plate.png", "--plate-dir", "in"], ["at most one of --plate"]),
        (["in", "-o", "out", "--plate", "in/plate.png", "--save", "rgba,matte"], ["unknown output 'matte'"]),
        (["in", "-o", "out", "--plate", "in/plate.png", "--model", "nope.pth"], ["nope.pth"]),
        (["in", "-o", "in/shot0.png", "--plate", "in/plate.png"], ["is a file"]),
        (["in", "-o", "out", "--plate", "in/plate.png", "--workers", "2"], ["apply to --ray runs"]),
        (["jobs.txt", "-o", "out"], ["JOBS is a folder or a manifest"]),
    ],
)
def test_bad_inputs_are_one_line_exit_2(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    make_shots(tmp_path / "in", n=2)
    (tmp_path / "jobs.txt").write_text("x")
    proc = subprocess.run(
        [sys.executable, "-m", "cleanplate", "batch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        cwd=tmp_path,
    )
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.png"))


def test_missing_pairing_plate_is_exit_2(tmp_path: Path) -> None:
    make_shots(tmp_path / "in", n=2)
    (tmp_path / "in" / "plate.png").unlink()
    assert_one_line_error(cli(tmp_path / "in", "-o", tmp_path / "out"), "no plate for shot0.png")
    assert not (tmp_path / "out").exists()


def test_manifest_error_names_the_line(tmp_path: Path) -> None:
    plate = make_shots(tmp_path, n=1)
    (tmp_path / "jobs.csv").write_text(f"input,plate,smooth\nshot0.png,{plate.name},\nshot0.png,{plate.name},2\n")
    assert_one_line_error(cli(tmp_path / "jobs.csv", "-o", tmp_path / "out"), "jobs.csv:3: smooth")


def test_sigint_then_rerun_resumes(tmp_path: Path) -> None:
    plate = make_shots(tmp_path / "in", n=8)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "cleanplate", "batch", tmp_path / "in", "-o", out, "--plate", plate]
    args += ["--model", "classical"]
    proc = subprocess.Popen(
        list(map(str, args)),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_env(CLEANPLATE_BATCH_TEST_SLEEP="0.4"),
    )
    deadline = time.monotonic() + 90
    done: list[str] = []
    while time.monotonic() < deadline:
        if (out / ".cleanplate" / "ledger.sqlite").exists():
            try:
                done = [k for k, r in ledger_rows(out).items() if r["state"] == "done"]
            except Exception:  # noqa: BLE001 - the schema may not exist yet
                done = []
            if len(done) >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    rows = ledger_rows(out)
    finished = {k for k, r in rows.items() if r["state"] == "done"}
    assert 2 <= len(finished) < 8 and not [r for r in rows.values() if r["state"] == "running"]
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    stamps = {k: (out / k).stat().st_mtime_ns for k in finished}
    again = cli(tmp_path / "in", "-o", out, "--plate", plate, "--model", "classical")
    assert again.returncode == 0, again.stderr
    assert f"{8 - len(finished)} done, 0 failed, {len(finished)} skipped" in again.stderr
    assert {k: (out / k).stat().st_mtime_ns for k in finished} == stamps  # finished items not redone
    assert len(list(out.glob("*.png"))) == 8


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    plate = make_shots(tmp_path / "in", n=2)
    proc = cli(tmp_path / "in", "-o", tmp_path / "out", "--plate", plate, "--dry-run")
    assert proc.returncode == 0 and "2 items (2 images, 0 videos): 0 already done, 2 to run" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_ray_with_a_bad_model_is_one_line_before_ray_starts(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    plate = make_shots(tmp_path / "in", n=1)
    proc = cli(tmp_path / "in", "-o", tmp_path / "out", "--plate", plate, "--ray", "--model", tmp_path / "nope.pth")
    assert_one_line_error(proc, "nope.pth")


def test_local_path_never_imports_ray(tmp_path: Path) -> None:
    plate = make_shots(tmp_path / "in", n=1)
    src, out = str(tmp_path / "in"), str(tmp_path / "o")
    code = (
        "import sys; from pathlib import Path; from cleanplate.batch import *; "
        f"items = load_jobs(Path({src!r}), JobDefaults(outdir=Path({out!r}), plate=Path({str(plate)!r}))); "
        f"s = run_batch(items, BatchConfig(outdir=Path({out!r}), model_params={{'model': 'classical'}})); "
        "print(s.ok, 'ray' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    assert proc.stdout.split() == ["True", "False"], proc.stderr
