"""ONNX export: onnxruntime gives the eager model's outputs, with dynamic batch/height/width.

Every export is traced at 1x256x384 (refine) / 1x128x192 (base) and run here on other shapes.
Reported numbers are max abs differences against the straightforward PyTorch model; ``ref_sm``
must be equal (inputs where every patch-grid cell is selected have no near-ties to flip).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")

import cleanplate  # noqa: E402
from cleanplate import MattingBase, MattingRefine  # noqa: E402
from cleanplate.errors import CleanplateError, InputError, OutputError  # noqa: E402
from cleanplate.export.common import BASE_OUTPUTS, REFINE_OUTPUTS, base_only, example_pair  # noqa: E402
from cleanplate.export.onnx import export_onnx, read_metadata, run_onnx  # noqa: E402
from cleanplate.export.runtime import OrtMatting  # noqa: E402

TOL = 1e-4
SMALL_CHECK = (2, 96, 128)  # the built-in check, on a shape other than the traced one


def _refine(weights, **kwargs) -> MattingRefine:
    model = MattingRefine("mobilenetv2", **kwargs).eval()
    model.load_state_dict(weights)
    return model


@pytest.fixture(scope="module")
def weights(make_weights) -> dict[str, torch.Tensor]:
    return make_weights("refine_mobilenetv2", 7)


def _assert_matches(path: Path, model, shapes) -> None:
    names = REFINE_OUTPUTS if isinstance(model, MattingRefine) else BASE_OUTPUTS
    for shape in shapes:
        src, bgr = example_pair(*shape, seed=sum(shape))
        with torch.inference_mode():
            want = model(src, bgr)
        got = run_onnx(path, src, bgr)
        for name, g, w in zip(names, got, want, strict=True):
            g = torch.from_numpy(g)
            assert g.shape == w.shape, f"{shape} {name}: shape {tuple(g.shape)} != {tuple(w.shape)}"
            if name == "ref_sm":
                assert torch.equal(g, w), f"{shape} ref_sm differs in {int((g != w).sum())} cells"
            else:
                diff = float((g - w).abs().max())
                assert diff <= TOL, f"{shape} {name}: onnxruntime vs PyTorch max abs diff {diff:.3g} > {TOL}"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sampling", "full", "thresholding"])
def test_refine_modes(weights, tmp_path: Path, mode: str) -> None:
    model = _refine(weights, refine_mode=mode, refine_threshold=0.0)
    result = export_onnx(model, tmp_path / "m.onnx", check_shape=SMALL_CHECK)
    assert result.check is not None and result.check.ok(), result.check.summary()
    # odd batch, sizes not seen at trace time; 64x96 selects every cell (k clamps to the grid)
    _assert_matches(result.path, model, [(3, 64, 96), (1, 128, 64)])


@pytest.mark.slow
def test_sampling_k_below_grid_and_scale_03(weights, tmp_path: Path) -> None:
    """k < cells (static top-k) and a backbone scale whose resizes are not powers of two."""
    model = _refine(weights, refine_sample_pixels=4240, backbone_scale=0.3)
    path = export_onnx(model, tmp_path / "m.onnx", check_shape=(1, 176, 320)).path
    meta = read_metadata(path)
    assert meta["backbone_scale"] == "0.3" and meta["refine_sample_pixels"] == "4240", meta
    _assert_matches(path, model, [(2, 96, 128)])


def test_base_only_and_metadata(weights, tmp_path: Path) -> None:
    model = base_only(_refine(weights))
    assert type(model) is MattingBase
    result = export_onnx(model, tmp_path / "b.onnx", check_shape=(1, 48, 80), opset=16)
    assert result.check.ok() and set(result.check.max_abs_diff) == set(BASE_OUTPUTS)
    _assert_matches(result.path, model, [(3, 45, 71)])  # MattingBase takes odd sizes
    meta = read_metadata(result.path)
    assert meta["architecture"] == "MattingBase" and meta["backbone"] == "mobilenetv2"
    assert "max abs diff" in result.summary()


@pytest.mark.slow
def test_resnet50_sampling(make_weights, tmp_path: Path) -> None:
    model = MattingRefine("resnet50", refine_sample_pixels=4720).eval()
    model.load_state_dict(make_weights("refine_resnet50", 7))
    result = export_onnx(model, tmp_path / "r.onnx", check_shape=(1, 128, 192), opset=18)
    assert result.check.ok(), result.check.summary()
    _assert_matches(result.path, model, [(2, 64, 96)])


def test_refuses_to_overwrite_and_bad_options(weights, tmp_path: Path) -> None:
    out = tmp_path / "exists.onnx"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        export_onnx(_refine(weights), out)
    assert out.read_bytes() == b"keep me"
    with pytest.raises(InputError, match="exporter"):
        export_onnx(_refine(weights), tmp_path / "x.onnx", exporter="magic")
    with pytest.raises(InputError, match="opset"):
        export_onnx(_refine(weights), tmp_path / "x.onnx", opset=9)
    with pytest.raises(InputError, match="only MattingBase/MattingRefine"):
        export_onnx(torch.nn.Conv2d(1, 1, 1), tmp_path / "x.onnx")
    assert not any(p.name != "exists.onnx" for p in tmp_path.iterdir())  # no temp files left


def test_failed_check_writes_nothing(weights, tmp_path: Path, monkeypatch) -> None:
    from cleanplate.export import onnx as onnx_export
    from cleanplate.export.common import Comparison

    monkeypatch.setattr(onnx_export, "check_onnx", lambda *a, **k: Comparison({"pha": 0.5}))
    with pytest.raises(CleanplateError, match="does not match PyTorch.*pha 5.00e-01"):
        export_onnx(base_only(_refine(weights)), tmp_path / "b.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_runtime_from_model_and_file(weights, tmp_path: Path) -> None:
    model = _refine(weights)
    runner = OrtMatting.from_model(model, cache_dir=tmp_path / "cache")
    src, bgr = example_pair(2, 64, 96, seed=3)
    with torch.inference_mode():
        want = model(src, bgr)
    got = runner(src, bgr)
    assert all(isinstance(t, torch.Tensor) for t in got) and len(got) == 6
    assert max(float((g - w).abs().max()) for g, w in zip(got[:5], want[:5], strict=True)) <= TOL
    assert torch.equal(got[5], want[5])
    cached = list((tmp_path / "cache").glob("*.onnx"))
    assert len(cached) == 1
    # a second runner reuses the cached file
    again = OrtMatting.from_model(model, cache_dir=tmp_path / "cache")
    again(src, bgr)
    assert list((tmp_path / "cache").glob("*.onnx")) == cached
    # from_file: fixed scale, stated when another one is asked for
    loaded = OrtMatting.from_file(cached[0])
    assert loaded.backbone_scale == 0.25 and loaded.refines
    loaded.backbone_scale = 0.25
    with pytest.raises(InputError, match="exported with backbone_scale 0.25"):
        loaded.backbone_scale = 0.5
    with pytest.raises(InputError, match="divisible by 4"):
        loaded(torch.rand(1, 3, 66, 96), torch.rand(1, 3, 66, 96))
    with pytest.raises(InputError, match="not found"):
        OrtMatting.from_file(tmp_path / "missing.onnx")


@pytest.mark.slow
def test_load_with_onnxruntime_backend(seed7_ckpt: Path) -> None:
    """cleanplate.load(..., backend='onnxruntime') matches the torch backend (auto scale per size)."""
    ckpt = seed7_ckpt
    torch_matter = cleanplate.load(ckpt, device="cpu")
    ort_matter = cleanplate.load(ckpt, device="cpu", backend="onnxruntime")
    assert ort_matter.model is None
    for h, w in ((120, 200), (90, 130)):  # auto backbone scale 1/2; odd sizes are padded by Matter
        src, bgr = example_pair(1, h, w, seed=h)
        a = torch_matter.matte_tensor(src, bgr)
        b = ort_matter.matte_tensor(src, bgr)
        for name, x, y in zip(("alpha", "fgr", "err", "ref"), a, b, strict=True):
            diff = float((x - y).abs().max())
            assert diff <= TOL, f"{h}x{w} {name}: max abs diff {diff:.3g}"


@pytest.mark.slow
def test_dynamo_exporter(weights, tmp_path: Path) -> None:
    """torch.onnx.export(dynamo=True): same checks, batch/height/width dynamic (traced with batch 2)."""
    model = _refine(weights)
    result = export_onnx(model, tmp_path / "d.onnx", exporter="dynamo", check_shape=(3, 96, 128))
    assert result.check.ok() and result.opset >= 18, result.check.summary()
    _assert_matches(result.path, model, [(1, 64, 96)])
