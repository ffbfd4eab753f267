"""``cleanplate export`` end to end, and user mistakes as one line with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cleanplate.cli.app import main

pytest.importorskip("onnxruntime")


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in err.strip().splitlines() if not line.startswith(("exporting", "no --model"))]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def ckpt(seed7_ckpt: Path) -> Path:
    return seed7_ckpt


@pytest.mark.slow
def test_onnx_from_checkpoint(capsys, ckpt, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    code, stdout, err = run(capsys, "export", "onnx", "--model", ckpt, "-o", out, "--sample-pixels", "4240")
    assert code == 0, err
    assert out.is_file() and "max abs diff" in stdout and "refined patches differing" in stdout
    diffs = [float(part.split()[-1]) for part in stdout.split("max abs diff:")[1].split(";")[0].split(",")]
    assert max(diffs) <= 1e-4, stdout
    # existing output without --force: refused, file untouched
    before = out.stat().st_mtime_ns
    code, _, err = run(capsys, "export", "onnx", "--model", ckpt, "-o", out)
    _one_line_error(code, err, "already exists", "--force")
    assert out.stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


@pytest.mark.slow
def test_torchscript_base_only_random_weights(capsys, tmp_path: Path) -> None:
    out = tmp_path / "b.pt"
    code, stdout, err = run(capsys, "export", "torchscript", "--backbone", "mobilenetv2", "--base-only", "-o", out)
    assert code == 0, err
    assert "random weights" in err and "wrote" in stdout
    assert len(torch.jit.load(str(out))(torch.rand(1, 3, 40, 52), torch.rand(1, 3, 40, 52))) == 4


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["onnx", "--backbone", "resnet42", "-o", "x.onnx"], ["resnet42", "--backbone"]),
        (["tflite", "--backbone", "mobilenetv2", "-o", "x.onnx"], ["tflite"]),
        (["onnx", "--backbone", "mobilenetv2"], ["--out"]),
        (["onnx", "--backbone", "mobilenetv2", "-o", "x.onnx", "--opset", "9"], ["opset"]),
        (["onnx", "--backbone", "mobilenetv2", "-o", "x.onnx", "--base-only", "--refine-mode", "full"], ["base-only"]),
        (["onnx", "--model", "classical", "-o", "x.onnx"], ["not a neural network"]),
        (["onnx", "--model", "missing.pth", "-o", "x.onnx"], ["not found"]),
        (["onnx", "--backbone", "mobilenetv2", "-o", "nofolder/x.onnx"], ["does not exist"]),
    ],
)
def test_bad_inputs(capsys, tmp_path: Path, monkeypatch, args, needles) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "export", *args)
    _one_line_error(code, err, *needles)
    assert not list(tmp_path.glob("*.onnx"))


def test_checkpoint_backbone_mismatch(capsys, ckpt, tmp_path: Path) -> None:
    code, _, err = run(capsys, "export", "onnx", "--model", ckpt, "--backbone", "resnet50", "-o", tmp_path / "x.onnx")
    _one_line_error(code, err, "mobilenetv2", "resnet50")
