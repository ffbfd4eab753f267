"""The Ray path on a local 2-CPU Ray: same bytes as the local path, videos split and stitched, crashes survived."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cleanplate.batch import BatchConfig, JobDefaults, RayOptions, load_jobs, run_batch
from cleanplate.batch.segments import plan_segments
from cleanplate.batch.work import EXIT_HOOK
from tests.batch.conftest import ledger_rows, make_gop_clip, make_shots, video_summary

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

VICTIM = "victim.png"


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """One local Ray for the module. The crash hook is in the environment before Ray starts, so its
    workers inherit it; it fires only for the item named ``victim.png``, once (the marker file)."""
    marker = tmp_path_factory.mktemp("hook") / "exited"
    old = os.environ.get(EXIT_HOOK)
    os.environ[EXIT_HOOK] = f"{VICTIM}={marker}"
    # Ray starts its workers at nice 15; on a CI box shared with other jobs they then starve for minutes.
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 2**20,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield marker
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop(EXIT_HOOK, None)
        else:
            os.environ[EXIT_HOOK] = old


def _run(folder: Path, out: Path, model: dict, ray_opts: RayOptions | None, plate: Path | None = None, **kw):
    items = load_jobs(folder, JobDefaults(outdir=out, plate=plate, save=kw.pop("save", None)))
    return run_batch(items, BatchConfig(outdir=out, model_params=model, ray=ray_opts, progress=False, **kw))


def test_images_bit_identical_to_local_and_a_corrupt_item_reported(ray_session, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    plate = make_shots(folder, n=4)
    (folder / "shot3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)
    model = {"model": "default", "device": "cpu"}
    local = _run(folder, tmp_path / "local", model, None, plate, save=("rgba", "alpha", "err"))
    remote = _run(
        folder, tmp_path / "ray", model, RayOptions(workers=2, batch_size=2), plate, save=("rgba", "alpha", "err")
    )
    for summary in (local, remote):
        assert summary.count("done") == 3 and [o.item.id for o in summary.failed] == ["shot3.png"]
    assert remote.failed[0].error == local.failed[0].error
    names = sorted(p.name for p in (tmp_path / "local").glob("*.png"))
    assert len(names) == 9 and names == sorted(p.name for p in (tmp_path / "ray").glob("*.png"))
    for name in names:
        a = np.asarray(Image.open(tmp_path / "local" / name))
        b = np.asarray(Image.open(tmp_path / "ray" / name))
        assert a.shape == b.shape and np.array_equal(a, b), name
    assert 0 < np.asarray(Image.open(tmp_path / "ray" / "shot0_alpha.png")).mean() < 255  # a real matte


def test_actor_killed_mid_batch_loses_and_duplicates_nothing(ray_session, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    names = [f"a{i}.png" for i in range(3)] + [VICTIM] + [f"b{i}.png" for i in range(3)]
    plate = make_shots(folder, names=names)
    out = tmp_path / "out"
    summary = _run(
        folder, out, {"model": "classical"}, RayOptions(workers=2, batch_size=2), plate, save=("rgba", "alpha")
    )
    assert ray_session.exists(), "the hook did not kill the actor: this test proved nothing"
    assert summary.ok and summary.count("done") == 7
    expected = sorted(f"{Path(n).stem}{s}.png" for n in names for s in ("", "_alpha"))
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == expected  # no temp files, no extras
    rows = ledger_rows(out)
    assert sorted(rows) == sorted(names) and {r["state"] for r in rows.values()} == {"done"}
    assert all(len(r["outputs"]) == 2 for r in rows.values())
    for n in names:  # what the ledger recorded is what is on disk
        for rec in rows[n]["outputs"]:
            from cleanplate.batch.ledger import check_output

            assert check_output(rec, full=True) is None
    again = _run(folder, out, {"model": "classical"}, None, plate, save=("rgba", "alpha"))
    assert again.count("skipped") == 7


def test_video_in_three_segments_matches_local(ray_session, tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    plate = make_gop_clip(folder / "take.mp4", data_dir, n=12, gop=4)
    Image.fromarray(plate).save(folder / "take_plate.png")
    (item,) = load_jobs(folder, JobDefaults(outdir=tmp_path / "x"))
    assert [s.frames for s in plan_segments(item, 4).segments] == [4, 4, 4]
    model = {"model": "classical"}  # the model is not under test here: the cutting and stitching are
    save = ("rgba", "alpha")
    local = _run(folder, tmp_path / "local", model, None, save=save)
    remote = _run(folder, tmp_path / "ray", model, RayOptions(workers=2, segment_frames=4), save=save)
    assert local.ok and remote.ok
    source = video_summary(folder / "take.mp4")
    for name in ("take.mov", "take_alpha.mov"):
        a, b = video_summary(tmp_path / "local" / name), video_summary(tmp_path / "ray" / name)
        assert len(b["pts"]) == len(source["pts"]) == 12
        assert b["tb"] == a["tb"] and b["pts"] == a["pts"]  # same timestamps as the one-pass result
        times = [float(p * b["tb"]) for p in b["pts"]]
        assert np.allclose(times, [float(p * source["tb"]) for p in source["pts"]])
        # alpha: each segment is matted independently; ProRes keeps it within its 10-bit rounding
        diff = max(
            np.abs(x[..., 3].astype(int) - y[..., 3].astype(int)).max()
            for x, y in zip(a["images"], b["images"], strict=True)
        )
        assert diff <= 2, diff
        assert b["audio_streams"] == 1 and b["audio"] == a["audio"] and len(b["audio"]) > 10  # audio once, as local
    assert not any((tmp_path / "ray" / ".cleanplate" / "segments").iterdir())  # segments removed after the stitch
