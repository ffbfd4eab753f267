"""Checkpoint formats: official state dicts, cleanplate files, and one-line errors for bad files."""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from cleanplate.errors import CheckpointError, InputError, OutputError
from cleanplate.models import MattingBase, MattingRefine
from cleanplate.models.checkpoint import (
    _expected_state,
    first_mismatch,
    infer_backbone,
    inspect_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from tests.shared_paths import REFERENCE
from tests.weights import entries_for

ENTRIES = [f"{arch}_{bb}" for arch in ("refine", "base") for bb in ("mobilenetv2", "resnet50", "resnet101")]


@pytest.fixture(scope="module")
def fixture_ckpt(seed7_ckpt: Path) -> Path:
    return seed7_ckpt


@pytest.fixture(scope="module")
def official_state(fixture_ckpt: Path) -> OrderedDict:
    return torch.load(fixture_ckpt, weights_only=True)


@pytest.fixture(scope="module")
def layouts() -> dict[str, dict[str, torch.Tensor]]:
    """Every official layout as meta tensors (keys and shapes only: free to build).

    From ../shared/reference/checkpoint_keys.json (listed from the original code) when present,
    else from cleanplate's networks (test_parity checks that both agree).
    """
    keys = REFERENCE / "checkpoint_keys.json"
    if keys.exists():
        entries = json.loads(keys.read_text())["entries"]
    else:
        entries = {name: entries_for(name) for name in ENTRIES}
    return {
        name: OrderedDict((k, torch.empty(shape, device="meta")) for k, shape, _ in entries[name]) for name in ENTRIES
    }


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


@pytest.mark.parametrize("entry", ENTRIES)
def test_official_layouts_match_and_backbone_is_inferred(layouts, entry):
    arch, backbone = entry.split("_")
    state = layouts[entry]
    assert infer_backbone(state) == backbone
    architecture = "MattingRefine" if arch == "refine" else "MattingBase"
    assert first_mismatch(state, _expected_state(architecture, backbone)) is None


def test_mobilenet_keys_do_not_fit_resnet50(layouts):
    problem = first_mismatch(layouts["refine_mobilenetv2"], _expected_state("MattingRefine", "resnet50"))
    assert "backbone.conv1.weight" in problem


def test_inspect_official_fixture(fixture_ckpt):
    info = inspect_checkpoint(fixture_ckpt)
    assert info["format"] == "official"
    assert info["architecture"] == "MattingRefine"
    assert info["backbone"] == "mobilenetv2"
    assert info["parameters"] == sum(p.numel() for p in MattingRefine("mobilenetv2").parameters()) == 5_006_839
    assert info["official_compatible"] is True
    assert info["tensors"] == 382


def test_load_official_fixture_equals_state_dict(fixture_ckpt, official_state):
    model, info = load_checkpoint(fixture_ckpt, refine_mode="full")
    assert isinstance(model, MattingRefine) and not model.training
    assert model.refiner.mode == "full"
    for key, value in model.state_dict().items():
        assert torch.equal(value, official_state[key]), key


def test_cleanplate_roundtrip_half_with_meta(tmp_path, fixture_ckpt, official_state):
    model, _ = load_checkpoint(fixture_ckpt)
    out = save_checkpoint(model, tmp_path / "m.pt", meta={"epochs": 3, "data": Path("/x"), "ok": [1, 2]}, half=True)
    raw = torch.load(out, weights_only=True)
    assert raw["format"] == "cleanplate" and raw["format_version"] == 1
    assert raw["state_dict"]["decoder.conv1.weight"].dtype == torch.float16
    assert raw["state_dict"]["decoder.bn1.num_batches_tracked"].dtype == torch.int64
    info = inspect_checkpoint(out)
    assert info["format"] == "cleanplate" and info["official_compatible"] is False
    assert info["meta"] == {"epochs": 3, "data": "/x", "ok": [1, 2]}
    assert info["dtype"] == "float16"
    loaded, linfo = load_checkpoint(out)
    w = loaded.state_dict()["decoder.conv1.weight"]
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, official_state["decoder.conv1.weight"], atol=1e-3, rtol=1e-3)
    assert linfo["backbone"] == "mobilenetv2"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp files left behind


def test_save_full_precision_is_exact_and_respects_force(tmp_path, fixture_ckpt, official_state):
    model, _ = load_checkpoint(fixture_ckpt)
    path = save_checkpoint(model, tmp_path / "m.pt")
    loaded, _ = load_checkpoint(path)
    assert all(torch.equal(v, official_state[k]) for k, v in loaded.state_dict().items())
    with pytest.raises(OutputError, match="exists"):
        save_checkpoint(model, path, force=False)
    save_checkpoint(model, path)  # training overwrites its own checkpoint by default


def test_base_checkpoint_roundtrip(tmp_path, make_weights):
    base = MattingBase("mobilenetv2")
    base.load_state_dict(make_weights("base_mobilenetv2", 3))
    path = save_checkpoint(base, tmp_path / "base.pt")
    loaded, info = load_checkpoint(path)
    assert isinstance(loaded, MattingBase) and not isinstance(loaded, MattingRefine)
    assert info["architecture"] == "MattingBase"
    with pytest.raises(InputError, match="MattingBase"):
        load_checkpoint(path, refine_mode="full")


def test_wrapped_and_dataparallel_state_dicts_load(tmp_path, official_state):
    torch.save({"state_dict": official_state, "epoch": 4}, tmp_path / "wrapped.pt")
    torch.save({f"module.{k}": v for k, v in official_state.items()}, tmp_path / "ddp.pt")
    for name in ("wrapped.pt", "ddp.pt"):
        model, info = load_checkpoint(tmp_path / name)
        assert info["backbone"] == "mobilenetv2"


# --------------------------------------------------------------------------------- bad files


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CheckpointError, match="not found") as exc:
        load_checkpoint(tmp_path / "nope.pth")
    _one_line(exc)
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


def test_bare_unknown_name_lists_builtins():
    # names are the registry's (the one way in); the checkpoint loader knows files only
    from cleanplate.models.registry import create_model

    with pytest.raises(CheckpointError, match="built-in models: default, fast, bgmv2, classical"):
        create_model("resnet-best")
    with pytest.raises(CheckpointError, match="checkpoint not found: resnet-best"):
        load_checkpoint("resnet-best")


def test_not_a_torch_file(tmp_path):
    (tmp_path / "junk.pth").write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as exc:
        inspect_checkpoint(tmp_path / "junk.pth")
    _one_line(exc)


@pytest.mark.parametrize("keep", [0.0001, 0.3, 0.999])
def test_truncated_checkpoint(tmp_path, fixture_ckpt, keep):
    data = fixture_ckpt.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: max(8, int(len(data) * keep))])
    with pytest.raises(CheckpointError, match="truncated") as exc:
        load_checkpoint(path)
    _one_line(exc)


def test_plain_pickle_and_objects_refused(tmp_path):
    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(tmp_path / "p.pkl")
    _one_line(exc)
    torch.save({"layer": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")
    with pytest.raises(CheckpointError, match="Python objects") as exc:
        load_checkpoint(tmp_path / "module.pt")
    _one_line(exc)


@pytest.mark.parametrize("obj", [[1, 2], {"a": 1}, {}, torch.zeros(3)])
def test_not_a_state_dict(tmp_path, obj):
    torch.save(obj, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a model state dict") as exc:
        load_checkpoint(tmp_path / "x.pt")
    _one_line(exc)


def test_foreign_state_dict(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="not a BGMv2 checkpoint.*fc.weight"):
        load_checkpoint(tmp_path / "x.pt")


def test_renamed_key_is_named(tmp_path, official_state):
    state = OrderedDict(official_state)
    state["decoder.conv9.weight"] = state.pop("decoder.conv1.weight")
    torch.save(state, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(tmp_path / "renamed.pth")
    text = _one_line(exc)
    assert "'decoder.conv1.weight'" in text and "'decoder.conv9.weight'" in text


def test_extra_key_is_named(tmp_path, official_state):
    state = OrderedDict(official_state)
    state["refiner.conv5.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match="unexpected key 'refiner.conv5.weight'"):
        inspect_checkpoint(tmp_path / "extra.pth")


def test_wrong_shape_is_named_with_both_shapes(tmp_path, official_state):
    state = OrderedDict(official_state)
    state["backbone.features.0.0.weight"] = torch.zeros(32, 3, 3, 3)
    torch.save(state, tmp_path / "rgb_only.pth")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(tmp_path / "rgb_only.pth")
    assert "'backbone.features.0.0.weight' has shape (32, 3, 3, 3), expected (32, 6, 3, 3)" in _one_line(exc)


def test_requested_backbone_must_agree(fixture_ckpt):
    with pytest.raises(CheckpointError, match="mobilenetv2 checkpoint, but backbone 'resnet50'"):
        load_checkpoint(fixture_ckpt, backbone="resnet50")
    with pytest.raises(InputError, match="unknown backbone 'vgg16'"):
        load_checkpoint(fixture_ckpt, backbone="vgg16")
    model, _ = load_checkpoint(fixture_ckpt, backbone="mobilenetv2")
    assert model.backbone_name == "mobilenetv2"


def test_cleanplate_header_checks(tmp_path, official_state):
    good = {
        "format": "cleanplate",
        "format_version": 1,
        "architecture": "MattingRefine",
        "backbone": "mobilenetv2",
        "state_dict": dict(official_state),
        "meta": {},
    }
    cases = {
        "future.pt": ({**good, "format_version": 2}, "format_version 2"),
        "arch.pt": ({**good, "architecture": "UNet"}, "unknown architecture 'UNet'"),
        "liar.pt": ({**good, "backbone": "resnet50"}, "header says backbone 'resnet50'"),
        "empty.pt": ({**good, "state_dict": {}}, "no usable 'state_dict'"),
    }
    for name, (blob, message) in cases.items():
        torch.save(blob, tmp_path / name)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / name)
