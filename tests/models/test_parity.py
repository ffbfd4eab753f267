"""Every reference fixture (original BGMv2 on deterministic weights) is reproduced.

Tolerance from ../shared/reference/README.md: max abs diff <= 1e-4 on float outputs,
``ref_sm`` exactly equal.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cleanplate import MattingBase, MattingRefine
from tests.shared_paths import REFERENCE

FIXTURES = sorted((REFERENCE / "fixtures").glob("*.pt")) if REFERENCE.exists() else []
TOL = 1e-4

pytestmark = pytest.mark.parity


def _ids() -> list:
    if not FIXTURES:
        return [pytest.param(None, marks=pytest.mark.skip(reason="../shared/reference is absent"))]
    return [pytest.param(p, id=p.stem) for p in FIXTURES]


@pytest.mark.parametrize("path", _ids())
def test_fixture(path: Path, make_weights) -> None:
    fx = torch.load(path, weights_only=True)
    cls = {"MattingBase": MattingBase, "MattingRefine": MattingRefine}[fx["model"]]
    model = cls(**fx["kwargs"]).eval()
    model.load_state_dict(make_weights(fx["keys_entry"], fx["weights_seed"]), strict=True)
    for case in fx["cases"]:
        src, bgr = (case[k].to(torch.float32) / 255 for k in ("src_u8", "bgr_u8"))
        with torch.inference_mode():
            outs = model(src, bgr)
        assert len(outs) == len(case["outputs"])
        for got, (name, want) in zip(outs, case["outputs"].items(), strict=True):
            assert got.shape == want.shape, f"{case['name']}/{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
            if name == "ref_sm":
                assert torch.equal(got, want), f"{case['name']}/ref_sm differs in {int((got != want).sum())} cells"
            else:
                diff = float((got - want).abs().max())
                assert diff <= TOL, f"{case['name']}/{name}: max abs diff {diff:.3g} > {TOL}"


def test_official_checkpoint_file_loads_strict(reference_dir: Path, make_weights) -> None:
    """The checkpoint written like the official files loads unchanged with weights_only."""
    state = torch.load(reference_dir / "fixtures" / "mobilenetv2_seed7.pth", weights_only=True)
    model = MattingRefine("mobilenetv2")
    model.load_state_dict(state, strict=True)
    want = make_weights("refine_mobilenetv2", 7)
    assert list(model.state_dict()) == list(want)


@pytest.mark.parametrize("backbone", ["mobilenetv2", "resnet50", "resnet101"])
@pytest.mark.parametrize("kind", ["base", "refine"])
def test_state_dict_layout_matches_official(backbone: str, kind: str, reference_dir: Path) -> None:
    import json

    entries = json.loads((reference_dir / "checkpoint_keys.json").read_text())["entries"][f"{kind}_{backbone}"]
    model = MattingBase(backbone) if kind == "base" else MattingRefine(backbone)
    got = [[k, list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in model.state_dict().items()]
    assert got == entries
