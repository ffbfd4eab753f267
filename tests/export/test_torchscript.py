"""TorchScript export round trip: save, load with torch.jit.load, same outputs at other shapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cleanplate import MattingRefine
from cleanplate.errors import OutputError
from cleanplate.export.common import base_only, example_pair
from cleanplate.export.torchscript import export_torchscript

TOL = 1e-4


@pytest.fixture(scope="module")
def model(make_weights) -> MattingRefine:
    net = MattingRefine("mobilenetv2").eval()
    net.load_state_dict(make_weights("refine_mobilenetv2", 7))
    return net


def test_round_trip(model, tmp_path: Path) -> None:
    result = export_torchscript(model, tmp_path / "m.pt", check_shape=(2, 96, 128))
    assert result.check.ok(), result.check.summary()
    loaded = torch.jit.load(str(result.path))
    for shape in ((3, 64, 96), (1, 128, 64)):  # every cell selected: ref_sm must be equal
        src, bgr = example_pair(*shape, seed=7)
        with torch.inference_mode():
            want = model(src, bgr)
            got = loaded(src, bgr)
        assert len(got) == 6
        for name, g, w in zip(("pha", "fgr", "pha_sm", "fgr_sm", "err_sm"), got, want, strict=False):
            diff = float((g - w).abs().max())
            assert diff <= TOL, f"{shape} {name}: TorchScript vs PyTorch max abs diff {diff:.3g}"
        assert torch.equal(got[5], want[5])


def test_base_and_no_overwrite(model, tmp_path: Path) -> None:
    path = tmp_path / "b.pt"
    result = export_torchscript(base_only(model), path, check_shape=(1, 45, 71))
    assert result.check.ok() and len(torch.jit.load(str(path))(*example_pair(1, 40, 52))) == 4
    with pytest.raises(OutputError, match="already exists"):
        export_torchscript(base_only(model), path, check=False)
