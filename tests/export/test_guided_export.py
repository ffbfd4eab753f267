"""The plate-guided default exports to ONNX and TorchScript, registration included."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cleanplate.cli.app import main
from cleanplate.models.guided import GuidedMatting
from cleanplate.models.guided.register import identity, register, warp

ort = pytest.importorskip("onnxruntime")


def _handheld_pair(h: int = 192, w: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """A frame (disk over texture) and its plate turned by 0.7 degrees and shifted ~3 px."""
    g = torch.Generator().manual_seed(4)
    bg = sum(
        torch.nn.functional.interpolate(torch.rand(1, 3, c, c, generator=g), (h, w), mode="bicubic")
        for c in (6, 16, 48)
    )
    bg = (bg / 3).clamp(0, 1)
    c, s = math.cos(math.radians(0.7)), math.sin(math.radians(0.7))
    plate = warp(bg, torch.tensor([[[c, -s, 0.02], [s, c, -0.015]]]))
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    alpha = (((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < (h / 4) ** 2).float()[None, None]
    return alpha * torch.tensor([0.9, 0.2, 0.5]).view(1, 3, 1, 1) + (1 - alpha) * bg, plate


def _onnx_and_torch(model: GuidedMatting, path: Path) -> tuple[list[np.ndarray], tuple[torch.Tensor, ...]]:
    """Export ``model`` (its own check on), run it in onnxruntime and in PyTorch on the handheld pair
    (another size than the export's example)."""
    from cleanplate.export.onnx import export_onnx

    torch.nn.init.normal_(model.net.head.weight, std=1e-3)  # a non-trivial correction, not just the keyer
    export_onnx(model, path, check=True)
    src, bgr = _handheld_pair()
    got = ort.InferenceSession(str(path)).run(None, {"src": src.numpy(), "bgr": bgr.numpy()})
    with torch.no_grad():
        return got, model(src, bgr)


@pytest.mark.slow
def test_onnx_runs_the_registration_like_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    got, want = _onnx_and_torch(GuidedMatting().eval(), tmp_path / "guided.onnx")
    src, bgr = _handheld_pair()
    np.testing.assert_allclose(got[0], want[0].numpy(), atol=1e-2)
    # the exported graph took the registration branch: the plate does move on this pair
    theta = register(torch.nn.functional.avg_pool2d(src, 2), torch.nn.functional.avg_pool2d(bgr, 2))
    assert (theta - identity(1, theta)).abs().max() > 0.005
    assert float(np.abs(got[0] - want[0].numpy()).mean()) < 1e-3


def test_cli_exports_the_default_model(capsys, tmp_path: Path) -> None:
    out = tmp_path / "default.pt"
    with pytest.raises(SystemExit) as exc:
        main(["export", "torchscript", "-m", "default", "-o", str(out)])
    assert exc.value.code == 0, capsys.readouterr().err
    assert out.is_file() and "max abs diff" in capsys.readouterr().out
    traced = torch.jit.load(str(out))
    src, bgr = _handheld_pair()
    from cleanplate.api import load

    with torch.no_grad():
        ref = load("default", device="cpu").model(src, bgr)[0]
        got = traced(src, bgr)[0]
    assert (got - ref).abs().max() < 1e-2


def test_cli_refuses_base_only_for_the_guided_model(capsys, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", "onnx", "-m", "default", "--base-only", "-o", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert exc.value.code != 0 and "Traceback" not in err and "--base-only" in err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.slow
def test_onnxruntime_backend_runs_the_default_model() -> None:
    """``load("default", backend="onnxruntime")``: the same matte as PyTorch on a handheld pair."""
    from cleanplate.api import load

    src, bgr = _handheld_pair()
    to_np = lambda t: (t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
    want = load("default", device="cpu").matte(to_np(src), to_np(bgr)).alpha
    got = load("default", device="cpu", backend="onnxruntime").matte(to_np(src), to_np(bgr)).alpha
    assert got.shape == want.shape == (192, 256)
    assert np.abs(got - want).max() < 2e-2 and np.abs(got - want).mean() < 1e-3


@pytest.mark.slow
def test_onnx_runs_the_subpixel_path_like_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(1)
    got, want = _onnx_and_torch(GuidedMatting(subpixel=True).eval(), tmp_path / "sub.onnx")
    assert float(np.abs(got[0] - want[0].numpy()).mean()) < 1e-3


@pytest.mark.slow
def test_onnx_runs_the_subpixel_path_at_quarter_scale_like_pytorch(tmp_path: Path) -> None:
    """Factor 4 (the HD setting): the sub-pixel features come from the frame averaged to half size."""
    torch.manual_seed(2)
    got, want = _onnx_and_torch(GuidedMatting(subpixel=True, backbone_scale=0.25).eval(), tmp_path / "q.onnx")
    assert float(np.abs(got[0] - want[0].numpy()).mean()) < 1e-3


@pytest.mark.slow
def test_onnx_runs_the_trust_head_like_pytorch(tmp_path: Path) -> None:
    """The per-pixel trust head (1x1 convolutions over the edge step's quantities) exports too."""
    torch.manual_seed(3)
    model = GuidedMatting(subpixel=True, pixel_trust=True).eval()
    torch.nn.init.normal_(model.trust.out.weight, std=0.5)
    got, want = _onnx_and_torch(model, tmp_path / "trust.onnx")
    assert float(np.abs(got[0] - want[0].numpy()).mean()) < 1e-3
