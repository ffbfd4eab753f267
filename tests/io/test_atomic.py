"""Atomic writes: nothing appears under the final name until the write has succeeded."""

from __future__ import annotations

import pytest

from cleanplate.errors import OutputError
from cleanplate.io.atomic import atomic_path, check_dir_creatable, check_output, ensure_dir


def test_success_replaces_and_keeps_the_suffix(tmp_path):
    final = tmp_path / "clip.mp4"
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".mp4" and tmp.name.startswith(".")
        assert not final.exists()
        tmp.write_bytes(b"data")
    assert final.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_failure_removes_the_temp_file_and_keeps_the_old_one(tmp_path):
    final = tmp_path / "out.png"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(final, force=True) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder died")
    assert final.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_interrupt_cleans_up(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "x.png") as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_nothing_written_is_an_error(tmp_path):
    with pytest.raises(OutputError, match="nothing was written"), atomic_path(tmp_path / "x.png"):
        pass


def test_existing_output_needs_force(tmp_path):
    (tmp_path / "x.png").write_bytes(b"keep")
    with pytest.raises(OutputError, match="already exists"), atomic_path(tmp_path / "x.png"):
        pass
    assert (tmp_path / "x.png").read_bytes() == b"keep"


def test_file_appearing_during_the_write_is_not_overwritten(tmp_path):
    final = tmp_path / "x.png"
    with pytest.raises(OutputError, match="already exists"), atomic_path(final) as tmp:
        tmp.write_bytes(b"new")
        final.write_bytes(b"someone else's")
    assert final.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_check_output_and_folders(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output(blocker / "out.png")
    with pytest.raises(OutputError, match="is a folder"):
        check_output(tmp_path)
    with pytest.raises(OutputError, match="is a file"):
        check_dir_creatable(blocker / "sub")
    with pytest.raises(OutputError, match="is a file"):
        check_dir_creatable(blocker)
    with pytest.raises(OutputError, match="a file is in the way|part of the path is a file"):
        ensure_dir(blocker / "sub")
    assert ensure_dir(tmp_path / "a" / "b").is_dir()
    assert check_dir_creatable(tmp_path / "c" / "d") == tmp_path / "c" / "d"
