"""``cleanplate info``: describes checkpoints; bad files give one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cleanplate.cli.app import main
from cleanplate.models.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def ckpt(seed7_ckpt: Path) -> Path:
    return seed7_ckpt


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_official_checkpoint(capsys, ckpt):
    code, out, err = run(capsys, "info", ckpt)
    assert code == 0, err
    fields = dict(line.split(":", 1) for line in out.splitlines() if not line.startswith(" "))
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["backbone"] == "mobilenetv2"
    assert fields["architecture"] == "MattingRefine"
    assert fields["parameters"] == "5,006,839"
    assert fields["format"].startswith("official")
    assert fields["official-compatible"] == "yes"


def test_cleanplate_checkpoint_with_meta_and_json(capsys, ckpt, tmp_path):
    model, _ = load_checkpoint(ckpt)
    path = save_checkpoint(model, tmp_path / "mine.pt", meta={"trained_on": "samples", "epochs": 2}, half=True)
    code, out, _ = run(capsys, "info", path)
    assert code == 0
    assert "cleanplate (format version 1)" in out and "official-compatible: no" in out
    assert "  trained_on: samples" in out and "  epochs: 2" in out
    code, out, _ = run(capsys, "info", path, "--json")
    info = json.loads(out)
    assert info["format"] == "cleanplate" and info["dtype"] == "float16" and info["meta"]["epochs"] == 2


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cleanplate: error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0]


def test_missing_file(capsys, tmp_path):
    _one_line_error(*run(capsys, "info", tmp_path / "nope.pth")[::2], "not found")


def test_non_checkpoint(capsys, tmp_path):
    (tmp_path / "x.pth").write_bytes(b"\x00" * 100)
    _one_line_error(*run(capsys, "info", tmp_path / "x.pth")[::2], "not a PyTorch checkpoint")


def test_truncated(capsys, ckpt, tmp_path):
    (tmp_path / "cut.pth").write_bytes(ckpt.read_bytes()[:-5000])
    _one_line_error(*run(capsys, "info", tmp_path / "cut.pth")[::2], "truncated")


def test_renamed_key(capsys, ckpt, tmp_path):
    state = torch.load(ckpt, weights_only=True)
    state["refiner.conv1.weightz"] = state.pop("refiner.conv1.weight")
    torch.save(state, tmp_path / "bad.pth")
    _one_line_error(*run(capsys, "info", tmp_path / "bad.pth")[::2], "'refiner.conv1.weight'", "weightz")


def test_builtin_names(capsys):
    from cleanplate.models.registry import DEFAULT_WEIGHTS

    code, out, err = run(capsys, "info", "default")
    if DEFAULT_WEIGHTS.is_file():
        assert code == 0 and "GuidedMatting" in out
    else:
        _one_line_error(code, err, "not installed")
    code, out, err = run(capsys, "info", "bgmv2")
    assert code == 0 and "mobilenetv2" in out
    code, out, _ = run(capsys, "info", "classical")
    assert code == 0 and "without weights" in out


def test_info_says_the_guided_default_is_not_an_official_layout() -> None:
    from cleanplate.cli.info import describe
    from cleanplate.models.checkpoint import inspect_checkpoint
    from cleanplate.models.registry import checkpoint_path

    lines = describe(inspect_checkpoint(checkpoint_path("default")))
    row = next(line for line in lines if line.startswith("official-compatible"))
    assert "cleanplate architecture" in row and "official layout" not in row
