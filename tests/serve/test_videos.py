"""Video jobs over real HTTP: lifecycle, cancel, limits, expiry, and what a restarted server reports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cleanplate.serve import Limits
from cleanplate.serve.jobs import Job, JobStore

from .conftest import assert_problem, encode, scene, slow_loader, wait_for, write_clip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "take.mp4", n=12)


@pytest.fixture(scope="module")
def plate_png() -> bytes:
    return encode(scene()[1])


def _submit(c, clip: Path, plate: bytes | None, **data) -> object:
    upload = {"video": ("take.mp4", clip.read_bytes(), "video/mp4")}
    if plate is not None:
        upload["plate"] = ("plate.png", plate, "image/png")
    return c.post("/v1/videos", files=upload, data={k: str(v) for k, v in data.items()})


def _finished(c, job_id: str) -> dict:
    def poll():
        job = c.get(f"/v1/videos/{job_id}").json()
        return job if job["state"] not in ("queued", "running") else None

    return wait_for(poll, timeout=120, interval=0.1)


def _decode(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_a_done_job_reports_its_plate_warnings_once(serve, clip: Path, plate_png: bytes) -> None:
    live = serve()
    with live.client() as c:
        plain = _finished(c, _submit(c, clip, plate_png, output="alpha", format="mov").json()["id"])
        assert plain["state"] == "done" and plain["detail"] is None
        # the frames of a synthetic scene have too few features to align: the CLI's note, once
        aligned = _finished(c, _submit(c, clip, plate_png, output="alpha", format="mov", align="true").json()["id"])
        assert aligned["state"] == "done", aligned
        assert aligned["detail"].startswith("warning: plate alignment fell back on "), aligned
        assert aligned["detail"].count("plate alignment") == 1, aligned["detail"]


@pytest.mark.parametrize(
    ("output", "fmt", "media_type"),
    [("rgba", "webm", "video/webm"), ("comp", "mp4", "video/mp4"), ("alpha", "mov", "video/quicktime")],
)
def test_video_job_lifecycle(serve, clip: Path, plate_png: bytes, tmp_path: Path, output, fmt, media_type) -> None:
    live = serve()
    with live.client() as c:
        r = _submit(c, clip, plate_png, output=output, format=fmt, background="blue")
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"/v1/videos/{job['id']}"
        assert job["state"] in ("queued", "running") and job["frames_total"] == 12
        done = _finished(c, job["id"])
        assert done["state"] == "done", done
        assert done["frames_done"] == 12 and done["progress"] == 1.0 and done["fps"] > 0
        result = c.get(done["result_url"])
        assert result.status_code == 200 and result.headers["content-type"] == media_type
        saved = tmp_path / f"result.{fmt}"
        saved.write_bytes(result.content)
        frames = _decode(saved)
        assert len(frames) == 12 and frames[0].shape == (72, 96, 3)
        folder = live.app.state.server.videos.folder(job["id"])
        assert [p.name for p in folder.iterdir()] == [f"result.{fmt}"]  # inputs removed, result kept
        assert c.delete(f"/v1/videos/{job['id']}").status_code == 204
        assert_problem(c.get(f"/v1/videos/{job['id']}"), 404)
        assert not folder.exists()


def test_jobs_are_listed_newest_first_and_by_state(serve, clip: Path, plate_png: bytes) -> None:
    live = serve()
    with live.client() as c:
        assert c.get("/v1/videos").json() == {"jobs": [], "count": 0}
        first = _submit(c, clip, plate_png, output="alpha", format="webm").json()
        _finished(c, first["id"])
        second = _submit(c, clip, plate_png, output="alpha", format="webm").json()
        _finished(c, second["id"])
        listed = c.get("/v1/videos").json()
        assert [j["id"] for j in listed["jobs"]] == [second["id"], first["id"]] and listed["count"] == 2
        assert listed["jobs"][0] == c.get(f"/v1/videos/{second['id']}").json()  # the same view as GET one
        assert [j["id"] for j in c.get("/v1/videos", params={"limit": 1}).json()["jobs"]] == [second["id"]]
        assert c.get("/v1/videos", params={"state": "failed"}).json()["count"] == 0
        assert c.get("/v1/videos", params={"state": "done"}).json()["count"] == 2
        assert_problem(c.get("/v1/videos", params={"state": "finished"}), 422)
        assert_problem(c.get("/v1/videos", params={"limit": 0}), 422)


def test_plate_can_be_a_clip_or_frames_of_the_input(serve, clip: Path) -> None:
    live = serve()
    with live.client() as c:
        upload = {"video": ("take.mp4", clip.read_bytes()), "plate": ("empty.mp4", clip.read_bytes())}
        r = c.post("/v1/videos", files=upload)
        assert r.status_code == 202, r.text
        assert _finished(c, r.json()["id"])["state"] == "done"
        r = _submit(c, clip, None, plate_frames="0:3", output="alpha", format="webm")
        assert r.status_code == 202, r.text
        assert _finished(c, r.json()["id"])["state"] == "done"


@pytest.mark.parametrize(
    ("data", "plate", "status", "words"),
    [
        ({"output": "rgba", "format": "mp4"}, True, 422, "cannot carry alpha"),
        ({"plate_frames": "0:3"}, True, 422, "not both"),
        ({}, False, 422, "plate: missing"),
        ({"plate_frames": "3"}, False, 422, "plate_frames"),
        ({"smooth": "1.5"}, True, 422, "smooth"),
        ({"background": "blur", "output": "rgba"}, True, None, None),  # accepted: blur is a background
    ],
)
def test_bad_video_options(client, clip: Path, plate_png: bytes, data, plate, status, words) -> None:
    r = _submit(client, clip, plate_png if plate else None, **data)
    if status is None:
        assert r.status_code == 202, r.text
        client.delete(r.headers["location"])
        return
    assert words in assert_problem(r, status)["detail"]


def test_plate_of_another_aspect_is_refused_up_front(client, clip: Path) -> None:
    tall = encode(np.ascontiguousarray(scene()[1].transpose(1, 0, 2)))
    body = assert_problem(_submit(client, clip, tall), 422, "invalid-input")
    assert "72x96 but the video is 96x72" in body["detail"]


def test_not_a_video(client, plate_png: bytes) -> None:
    r = client.post("/v1/videos", files={"video": ("x.mp4", b"\0" * 1000), "plate": ("p.png", plate_png)})
    body = assert_problem(r, 422, "invalid-input")
    assert body["detail"].startswith("video:") and "/" not in body["detail"]  # no server paths in messages


def test_video_limits(serve, clip: Path, plate_png: bytes) -> None:
    live = serve(limits=Limits(max_video_seconds=0.5))  # the clip lasts 1 s
    with live.client() as c:
        assert "longer than the limit" in assert_problem(_submit(c, clip, plate_png), 413, "too-long")["detail"]
    live = serve(limits=Limits(max_video_pixels=1000), state_dir=live.app.state.server.config.state_dir.parent / "b")
    with live.client() as c:
        assert_problem(_submit(c, clip, plate_png), 413, "too-many-pixels")
    assert list(live.app.state.server.jobs_root.iterdir()) == []  # refused jobs leave no folder


def test_result_before_done_and_cancel(serve, tmp_path: Path, plate_png: bytes) -> None:
    long_clip = write_clip(tmp_path / "long.mp4", n=40)
    live = serve(loader=slow_loader(0.1))
    with live.client() as c:
        job = _submit(c, long_clip, plate_png).json()
        url = f"/v1/videos/{job['id']}"
        running = wait_for(lambda: (j := c.get(url).json())["frames_done"] > 0 and j)
        assert running["state"] == "running" and 0 < running["progress"] < 1
        assert running["eta_seconds"] is not None and running["eta_seconds"] > 0
        assert_problem(c.get(url + "/result"), 409, "not-ready")
        assert c.delete(url).status_code == 204
        assert_problem(c.get(url), 404)
        assert not live.app.state.server.videos.folder(job["id"]).exists()
        wait_for(lambda: live.app.state.server.videos.active == 0, timeout=30)


def test_too_many_jobs_is_429(serve, tmp_path: Path, plate_png: bytes) -> None:
    long_clip = write_clip(tmp_path / "long.mp4", n=40)
    live = serve(loader=slow_loader(0.1), limits=Limits(max_video_jobs=1))
    with live.client() as c:
        first = _submit(c, long_clip, plate_png)
        assert first.status_code == 202
        busy = _submit(c, long_clip, plate_png)
        assert_problem(busy, 429, "busy")
        assert int(busy.headers["retry-after"]) >= 1
        c.delete(first.headers["location"])


def test_results_expire(serve, clip: Path, plate_png: bytes) -> None:
    live = serve(limits=Limits(job_ttl_seconds=0.5))
    with live.client() as c:
        job = _submit(c, clip, plate_png).json()
        assert _finished(c, job["id"])["state"] == "done"
        url = f"/v1/videos/{job['id']}"
        wait_for(lambda: c.get(url).json()["state"] == "expired", timeout=30, interval=0.2)
        assert_problem(c.get(url + "/result"), 410, "gone")
        assert not live.app.state.server.videos.folder(job["id"]).exists()


# ----------------------------------------------------------------------------- restarts
def test_store_marks_unfinished_jobs_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite3"
    store = JobStore(db, ttl=60)
    for job_id, state in (("a" * 16, "queued"), ("b" * 16, "running"), ("c" * 16, "done"), ("d" * 16, "failed")):
        store.create(Job(id=job_id, state=state, created=time.time(), output="rgba", format="webm"))
    store.close()
    store = JobStore(db, ttl=60)
    states = {j: store.get(j).state for j in ("a" * 16, "b" * 16, "c" * 16, "d" * 16)}
    assert states == {"a" * 16: "interrupted", "b" * 16: "interrupted", "c" * 16: "done", "d" * 16: "failed"}
    assert "running" in store.get("b" * 16).detail and store.get("b" * 16).expires is not None
    store.close()


def test_restart_removes_folders_of_unrecorded_jobs(serve, tmp_path: Path) -> None:
    state = tmp_path / "state"
    orphan = state / "jobs" / "AAAAAAAAAAAAAAAA"
    orphan.mkdir(parents=True)
    (orphan / "video-upload").write_bytes(b"half an upload")
    serve(state_dir=state)
    assert not orphan.exists()


def test_graceful_shutdown_marks_the_running_job(serve, tmp_path: Path, plate_png: bytes) -> None:
    """Shutdown gives a running job its grace period, then stops it and records it as interrupted."""
    state = tmp_path / "state"
    long_clip = write_clip(tmp_path / "long.mp4", n=60)
    live = serve(loader=slow_loader(0.1), limits=Limits(shutdown_grace_seconds=0.3), state_dir=state)
    with live.client() as c:
        job = _submit(c, long_clip, plate_png).json()
        queued = _submit(c, long_clip, plate_png).json()
        wait_for(lambda: c.get(f"/v1/videos/{job['id']}").json()["frames_done"] > 0)
    live.stop()
    again = serve(state_dir=state)
    with again.client() as c:
        for job_id in (job["id"], queued["id"]):
            seen = c.get(f"/v1/videos/{job_id}").json()
            assert seen["state"] == "interrupted", seen
            assert "shut down" in seen["detail"]
            assert_problem(c.get(f"/v1/videos/{job_id}/result"), 409, "not-ready")


def _start_cli(state: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cleanplate", "serve", "--port", "0", "--state-dir", str(state), *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "cleanplate serve: http://" in line:
            return proc, line.split()[2].rstrip("/")
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("the server did not start")


@pytest.mark.slow
def test_a_killed_server_reports_the_job_as_interrupted(tmp_path: Path, plate_png: bytes) -> None:
    """SIGKILL mid-job (no chance to clean up), restart on the same state folder: the job is 'interrupted'."""
    import httpx

    state = tmp_path / "state"
    clip = write_clip(tmp_path / "long.mp4", n=300, size=(144, 192))
    plate = encode(scene((144, 192))[1])
    proc, url = _start_cli(state, "--model", "default")
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            r = _submit(c, clip, plate)
            assert r.status_code == 202, r.text
            job_url = r.headers["location"]
            wait_for(lambda: c.get(job_url).json()["frames_done"] > 0, timeout=120)
            assert c.get(job_url).json()["state"] == "running"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    proc, url = _start_cli(state, "--model", "classical")
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            seen = c.get(job_url).json()
            assert seen["state"] == "interrupted", seen
            assert "stopped while the job was running" in seen["detail"]
            assert seen["frames_done"] > 0
            assert c.delete(job_url).status_code == 204
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the normal way to stop a server
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and err.strip().endswith("cleanplate serve: stopped"), (proc.returncode, err)
    finally:
        proc.kill()
        proc.wait(timeout=60)
