"""The local runner and the ledger: results equal the image pipeline, re-runs skip, failures stay local."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cleanplate
from cleanplate.batch import BatchConfig, JobDefaults, load_jobs, run_batch
from cleanplate.batch.ledger import Ledger, check_output, describe_output
from cleanplate.errors import OutputError
from tests.batch.conftest import ledger_rows, make_gop_clip, video_summary

CLASSICAL = {"model": "classical"}


def _run(folder: Path, plate: Path, out: Path, **config):
    items = load_jobs(folder, JobDefaults(outdir=out, plate=plate, save=config.pop("save", None)))
    return run_batch(items, BatchConfig(outdir=out, model_params=CLASSICAL, progress=False, **config))


def test_outputs_equal_the_api(shots, tmp_path: Path) -> None:
    folder, plate = shots
    out = tmp_path / "out"
    summary = _run(folder, plate, out, save=("rgba", "alpha", "comp"))
    assert summary.ok and summary.count("done") == 4
    matter = cleanplate.load("classical")
    matte = matter.matte(folder / "shot2.png", plate)
    assert np.array_equal(np.asarray(Image.open(out / "shot2.png")), matte.rgba())
    assert np.array_equal(np.asarray(Image.open(out / "shot2_alpha.png")), matte.to_array("alpha"))
    assert np.array_equal(np.asarray(Image.open(out / "shot2_comp.png")), matte.composite("green"))
    rows = ledger_rows(out)
    assert {r["state"] for r in rows.values()} == {"done"} and len(rows) == 4
    assert all(r["attempts"] == 1 and len(r["outputs"]) == 3 for r in rows.values())
    assert "4 done, 0 failed, 0 skipped" in summary.table()


def test_rerun_skips_finished_and_redoes_a_missing_output(shots, tmp_path: Path) -> None:
    folder, plate = shots
    out = tmp_path / "out"
    assert _run(folder, plate, out).ok
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    (out / "shot1.png").unlink()
    summary = _run(folder, plate, out)
    assert (summary.count("skipped"), summary.count("done")) == (3, 1)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert {k for k in after if after[k] != before.get(k)} == {"shot1.png"}
    assert ledger_rows(out)["shot1.png"]["attempts"] == 2


def test_changed_output_is_not_overwritten_without_force(shots, tmp_path: Path) -> None:
    folder, plate = shots
    out = tmp_path / "out"
    assert _run(folder, plate, out).ok
    retouched = np.zeros((48, 64, 4), np.uint8)
    Image.fromarray(retouched).save(out / "shot0.png")  # an artist painted over the matte
    with pytest.raises(OutputError, match=r"shot0\.png changed since the batch wrote it; use --force"):
        _run(folder, plate, out)
    assert np.array_equal(np.asarray(Image.open(out / "shot0.png")), retouched)
    summary = _run(folder, plate, out, force=True)
    assert summary.count("done") == 1 and not np.array_equal(np.asarray(Image.open(out / "shot0.png")), retouched)


def test_foreign_file_and_other_settings_need_force(shots, tmp_path: Path) -> None:
    folder, plate = shots
    out = tmp_path / "out"
    out.mkdir()
    (out / "shot3.png").write_bytes(b"someone else's")
    with pytest.raises(OutputError, match=r"shot3\.png already exists \(use --force"):
        _run(folder, plate, out)
    assert (out / "shot3.png").read_bytes() == b"someone else's"
    assert not (out / "shot0.png").exists()  # refused before any work
    (out / "shot3.png").unlink()
    assert _run(folder, plate, out).ok
    with pytest.raises(OutputError, match=r"finished with other settings"):
        _run(folder, plate, out, save=("rgba", "alpha"))


def test_corrupt_item_is_reported_and_the_rest_done(shots, tmp_path: Path) -> None:
    folder, plate = shots
    (folder / "shot1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    out = tmp_path / "out"
    summary = _run(folder, plate, out)
    assert summary.count("done") == 3 and [o.item.id for o in summary.failed] == ["shot1.png"]
    assert "\n" not in summary.failed[0].error and "shot1.png" in summary.failed[0].error
    assert "3 done, 1 failed, 0 skipped" in summary.table()
    rows = ledger_rows(out)
    assert rows["shot1.png"]["state"] == "failed" and rows["shot1.png"]["attempts"] == 1  # input errors: no retry
    # fixed input: the re-run retries the failed item only
    Image.open(folder / "shot0.png").save(folder / "shot1.png")
    summary = _run(folder, plate, out)
    assert (summary.count("done"), summary.count("skipped")) == (1, 3)


def test_unexpected_errors_are_retried_then_reported(shots, tmp_path: Path, monkeypatch) -> None:
    import cleanplate.batch.run as run_mod

    calls: dict[str, int] = {}
    real = run_mod.run_item

    def flaky(matter, item):
        calls[item.id] = calls.get(item.id, 0) + 1
        if item.id == "shot0.png" and calls[item.id] == 1:
            raise RuntimeError("transient\nsecond line")
        if item.id == "shot2.png":
            raise MemoryError("out of memory")
        return real(matter, item)

    monkeypatch.setattr(run_mod, "run_item", flaky)
    folder, plate = shots
    summary = _run(folder, plate, tmp_path / "out", max_attempts=3)
    assert calls["shot0.png"] == 2 and calls["shot2.png"] == 3
    assert [(o.item.id, o.error) for o in summary.failed] == [("shot2.png", "MemoryError: out of memory")]


def test_interrupt_releases_the_item_and_resumes(shots, tmp_path: Path, monkeypatch) -> None:
    import cleanplate.batch.run as run_mod

    real = run_mod.run_item

    def interrupted(matter, item):
        if item.id == "shot2.png":
            raise KeyboardInterrupt
        return real(matter, item)

    monkeypatch.setattr(run_mod, "run_item", interrupted)
    folder, plate = shots
    out = tmp_path / "out"
    summary = _run(folder, plate, out)
    assert summary.interrupted and summary.count("done") == 2 and summary.count("pending") == 2
    rows = ledger_rows(out)
    assert rows["shot2.png"] == {**rows["shot2.png"], "state": "pending", "attempts": 0}
    monkeypatch.setattr(run_mod, "run_item", real)
    summary = _run(folder, plate, out)
    assert (summary.count("done"), summary.count("skipped")) == (2, 2)


def test_stale_running_items_from_a_killed_run_are_redone(shots, tmp_path: Path) -> None:
    folder, plate = shots
    out = tmp_path / "out"
    assert _run(folder, plate, out).ok
    with Ledger(out) as ledger:
        ledger.start(["shot3.png"])  # as if the process died mid-item
    summary = _run(folder, plate, out)
    assert summary.count("done") == 1 and any("killed run" in n for n in summary.notes)


def test_one_run_per_outdir(shots, tmp_path: Path) -> None:
    folder, plate = shots
    out = tmp_path / "out"
    holder = Ledger(out)
    holder.lock()
    try:
        with pytest.raises(OutputError, match=r"another cleanplate batch is running"):
            _run(folder, plate, out)
    finally:
        holder.close()


def test_check_output_quick_and_full(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    rec = describe_output(f)
    assert check_output(rec) is None and check_output(rec, full=True) is None
    f.write_bytes(b"abd")
    os.utime(f, ns=(rec["mtime_ns"], rec["mtime_ns"]))  # same size and mtime: quick mode trusts it
    assert check_output(rec) is None and check_output(rec, full=True) == "changed"
    f.write_bytes(b"abcd")
    assert check_output(rec) == "changed"
    f.unlink()
    assert check_output(rec) == "missing"


def test_video_locally_keeps_frames_and_audio(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    plate = make_gop_clip(folder / "take.mp4", data_dir)
    Image.fromarray(plate).save(folder / "take_plate.png")
    out = tmp_path / "out"
    items = load_jobs(folder, JobDefaults(outdir=out, save=("rgba", "alpha")))
    summary = run_batch(items, BatchConfig(outdir=out, model_params=CLASSICAL, progress=False))
    assert summary.ok
    got = video_summary(out / "take.mov")
    assert len(got["pts"]) == 12 and got["audio_streams"] == 1 and got["audio"]
    assert (out / "take_alpha.mov").exists() and not list(out.glob("*partial*"))


def test_per_item_options_reach_the_outputs(tmp_path: Path) -> None:
    from tests.batch.conftest import make_shots

    plate = make_shots(tmp_path, names=["a.png", "b.png"])
    (tmp_path / "jobs.jsonl").write_text(
        f'{{"input": "a.png", "plate": "{plate.name}", "outputs": "comp", "background": "#ff0000"}}\n'
        f'{{"input": "b.png", "plate": "{plate.name}", "outputs": "comp=blue/b.png", "background": "0,0,255"}}\n'
    )
    out = tmp_path / "out"
    items = load_jobs(tmp_path / "jobs.jsonl", JobDefaults(outdir=out))
    assert run_batch(items, BatchConfig(outdir=out, model_params=CLASSICAL, progress=False)).ok
    red = np.asarray(Image.open(out / "a_comp.png"))
    blue = np.asarray(Image.open(out / "blue" / "b.png"))
    assert tuple(red[0, 0]) == (255, 0, 0) and tuple(blue[0, 0]) == (0, 0, 255)  # corners are background
    assert tuple(red[24, 32]) != (255, 0, 0)  # the subject is not
