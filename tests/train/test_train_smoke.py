"""Training runs end to end on tiny crops, resumes from its last checkpoint, and exports a model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from cleanplate.errors import InputError
from cleanplate.train.config import load_config
from cleanplate.train.loop import Trainer, lr_at
from cleanplate.train.losses import base_loss, sobel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def smoke_config(tmp_path: Path, data_dir: Path) -> Path:
    text = (ROOT / "configs" / "smoke.toml").read_text()
    text = text.replace("../../shared/data", str(data_dir)).replace('out_dir = "../runs"', f'out_dir = "{tmp_path}"')
    path = tmp_path / "smoke.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_two_stages_resume_and_export(smoke_config: Path, tmp_path: Path) -> None:
    cfg = load_config(smoke_config)
    logs: list[str] = []
    last = Trainer(cfg, log=logs.append).run()
    state = torch.load(last, weights_only=True)
    assert state["stage"] == 1 and state["step"] == 2
    assert any("stage 1 (refine) step 2/2" in m for m in logs)
    assert all("am_" not in s for s in state["sources"]), "non-commercial subjects must never train the shipped model"
    # A finished run resumes to a no-op; a cut run resumes where it stopped.
    shutil.copy(tmp_path / "smoke" / "stage0.pt", tmp_path / "stage0.pt")
    logs.clear()
    Trainer(cfg, log=logs.append).run()
    assert not any("step 1/" in m for m in logs)
    # The run exports to a shippable fp16 checkpoint that the API loads and fine-tuning starts from.
    from cleanplate import load
    from cleanplate.models.checkpoint import inspect_checkpoint
    from cleanplate.train.export import export_run, initial_weights

    model_path = export_run(last, tmp_path / "model.pt", meta={"note": "smoke"})
    info = inspect_checkpoint(model_path)
    assert info["backbone"] == "mobilenetv2" and info["architecture"] == "MattingRefine"
    matte = load(str(model_path), device="cpu").matte(
        (torch.rand(40, 52, 3) * 255).byte().numpy(), (torch.rand(40, 52, 3) * 255).byte().numpy()
    )
    assert matte.alpha.shape == (40, 52)
    weights = initial_weights(str(model_path))
    assert torch.allclose(weights["refiner.conv1.weight"], state["model"]["refiner.conv1.weight"], atol=1e-2)


def test_lr_schedule_warms_up_and_decays() -> None:
    from cleanplate.train.config import StageConfig

    stage = StageConfig(steps=100, lr=1e-3, warmup=10, decay_from=0.5)
    assert lr_at(0, stage) == pytest.approx(1e-4)
    assert lr_at(30, stage) == pytest.approx(1e-3)
    assert lr_at(99, stage) < lr_at(60, stage) < 1e-3
    assert lr_at(100, stage) == pytest.approx(1e-4)


def test_losses_vanish_for_perfect_prediction() -> None:
    pha = torch.rand(2, 1, 16, 16)
    fgr = torch.rand(2, 3, 16, 16)
    total, terms = base_loss((pha, fgr, torch.zeros_like(pha), None), pha, fgr)
    assert float(total) == 0.0
    step = torch.zeros(1, 1, 8, 8)
    step[..., 4:] = 1
    assert float(sobel(step).abs().sum()) > 0


def test_config_rejects_unknown_keys(tmp_path: Path) -> None:
    from cleanplate.errors import InputError

    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nlearning_rate = 1\n')
    with pytest.raises(InputError, match="learning_rate"):
        load_config(bad)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_their_mix_is_valid(path: Path) -> None:
    from cleanplate.train.dataset import Mix

    cfg = load_config(path)
    Mix(**cfg.mix)  # an unknown [mix] key would only fail once training starts
    assert cfg.stages and all(s.steps > 0 for s in cfg.stages)


@pytest.mark.slow
def test_guided_model_trains_resumes_and_exports(tmp_path: Path, data_dir: Path) -> None:
    text = (ROOT / "configs" / "smoke_guided.toml").read_text()
    text = text.replace("../../shared/data", str(data_dir)).replace('out_dir = "../runs"', f'out_dir = "{tmp_path}"')
    path = tmp_path / "smoke_guided.toml"
    path.write_text(text)
    cfg = load_config(path)
    logs: list[str] = []
    last = Trainer(cfg, log=logs.append).run()
    state = torch.load(last, weights_only=True)
    assert state["step"] == 3 and any("stage 0 (guided) step 3/3" in m for m in logs)
    assert any(float(v.abs().sum()) > 0 for k, v in state["model"].items() if k.startswith("net.head."))

    from cleanplate import load
    from cleanplate.models.checkpoint import inspect_checkpoint
    from cleanplate.train.export import export_run

    model_path = export_run(last, tmp_path / "model.pt")
    assert inspect_checkpoint(model_path)["architecture"] == "GuidedMatting"
    rgb = (torch.rand(40, 52, 3) * 255).byte().numpy()
    assert load(str(model_path), device="cpu").matte(rgb, rgb).alpha.shape == (40, 52)


def test_plate_texture_cuts_subject_textures_from_the_plate(data_dir: Path) -> None:
    import numpy as np

    from cleanplate.train.dataset import Mix, load_training_pool, make_sample

    subjects, backgrounds, _ = load_training_pool(
        data_dir / "train" / "gt", [data_dir / "train" / "backgrounds"], long_side=128
    )
    base = dict(real=0.0, procedural=1.0, empty=0.0, photo_texture=1.0, colour_jitter=0.0, levels=(1.0, 0.0, 0.0))
    plain = Mix(**base)
    own = Mix(**base, plate_texture=1.0)
    a = make_sample(np.random.default_rng(5), subjects, backgrounds, (64, 64), plain)
    b = make_sample(np.random.default_rng(5), subjects, backgrounds, (64, 64), own)
    inside = b["pha"] > 0.2
    assert inside.any() and not np.array_equal(a["src"], b["src"])
    assert b["src"].shape == (64, 64, 3) and b["src"].min() >= 0 and b["src"].max() <= 1


def test_init_from_a_training_state_takes_its_model_weights(tmp_path) -> None:
    """A second stage starts from a named step of the first (``--init runs/x/step690.pt``)."""
    from cleanplate.errors import CheckpointError
    from cleanplate.models.guided import GuidedMatting
    from cleanplate.train.export import initial_weights

    model = GuidedMatting()
    torch.nn.init.constant_(model.net.head.bias, 0.25)
    state = {"stage": 0, "step": 690, "model": model.state_dict(), "optimizer": {}, "config": {"name": "x"}}
    path = tmp_path / "step690.pt"
    torch.save(state, path)
    weights = initial_weights(str(path))
    assert torch.equal(weights["net.head.bias"], model.net.head.bias)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        initial_weights(str(tmp_path / "junk.pt"))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_saves_the_steps_done(smoke_config: Path, monkeypatch, how: str) -> None:
    """Interrupted at step 2 of stage 0 (Ctrl-C, or ``kill``): last.pt holds step 1 exactly, and a
    resume goes on from there."""
    import os
    import signal

    import cleanplate.train.loop as loop

    cfg = load_config(smoke_config)
    calls = {"n": 0}
    real = loop.base_loss

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            if how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)  # handled at once: raises inside this call
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "base_loss", flaky)
    before = signal.getsignal(signal.SIGTERM)
    logs: list[str] = []
    trainer = Trainer(cfg, log=logs.append)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    state = torch.load(trainer.last_path, weights_only=True)
    assert (state["stage"], state["step"]) == (0, 1)
    assert any("interrupted at stage 0 step 1" in m for m in logs)
    monkeypatch.setattr(loop, "base_loss", real)
    logs.clear()
    Trainer(cfg, log=logs.append).run()
    assert any("resuming stage 0 at step 1" in m for m in logs)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back


@pytest.mark.slow
def test_guided_then_error_channel_stage(smoke_config: Path, tmp_path: Path) -> None:
    """A ``guided`` stage, then ``guided_error``: only the error channel moves, and it leaves zero."""
    text = smoke_config.read_text()
    text = text[: text.index("[[stages]]")] + (
        '[[stages]]\nkind = "guided"\nsteps = 2\nbatch_size = 2\nsize = [64, 64]\n\n'
        '[[stages]]\nkind = "guided_error"\nsteps = 4\nbatch_size = 2\nsize = [64, 64]\nlr = 1e-2\nwarmup = 0\n'
    )
    text = text.replace("bf16 = true", "bf16 = false")
    path = tmp_path / "guided.toml"
    path.write_text(text)
    cfg = load_config(path)
    trainer = Trainer(cfg, log=lambda m: None)
    trainer.run()
    first = torch.load(tmp_path / "smoke" / "stage0.pt", weights_only=True)["model"]
    final = torch.load(trainer.last_path, weights_only=True)["model"]
    changed = [k for k in first if not torch.equal(first[k], final[k])]
    assert changed == ["net.head.weight", "net.head.bias"], changed  # BatchNorm statistics kept too
    assert torch.equal(first["net.head.weight"][:5], final["net.head.weight"][:5])
    assert not torch.equal(first["net.head.weight"][5], final["net.head.weight"][5])


@pytest.mark.slow
def test_guided_then_trust_head_stage(smoke_config: Path, tmp_path: Path) -> None:
    """A ``guided`` stage, then ``guided_trust``: the network's weights and BatchNorm statistics stay
    exactly as trained; only the per-pixel trust head (new, started as a no-op) moves."""
    text = smoke_config.read_text()
    text = text[: text.index("[[stages]]")] + (
        '[[stages]]\nkind = "guided"\nsubpixel = true\nsteps = 2\nbatch_size = 2\nsize = [64, 64]\n\n'
        '[[stages]]\nkind = "guided_trust"\nsubpixel = true\nsteps = 4\nbatch_size = 2\nsize = [64, 64]\n'
        "lr = 1e-2\nwarmup = 0\ntrust_hidden = [8]\n"
    )
    text = text.replace("bf16 = true", "bf16 = false")
    path = tmp_path / "trust.toml"
    path.write_text(text)
    trainer = Trainer(load_config(path), log=lambda m: None)
    trainer.run()
    first = torch.load(tmp_path / "smoke" / "stage0.pt", weights_only=True)["model"]
    final = torch.load(trainer.last_path, weights_only=True)["model"]
    assert all(torch.equal(first[k], final[k]) for k in first)
    added = sorted(k for k in final if k not in first)
    assert added and all(k.startswith("trust.") for k in added)
    assert final["trust.out.weight"].abs().sum() > 0  # it left its zero start
    assert final["trust.mlp.0.weight"].shape == (8, 10, 1, 1) and "trust.mlp.2.weight" not in final  # one layer of 8


def test_trust_hidden_must_name_positive_widths(smoke_config: Path, tmp_path: Path) -> None:
    for bad in ("[]", "[0]", "[16, -1]"):
        path = tmp_path / "bad.toml"
        path.write_text(smoke_config.read_text().replace("[[stages]]", f"[[stages]]\ntrust_hidden = {bad}", 1))
        with pytest.raises(InputError, match="trust_hidden"):
            load_config(path)


@pytest.mark.slow
def test_until_stops_a_stage_and_blend_interpolates_the_export(smoke_config: Path, tmp_path: Path) -> None:
    """``--until 2`` stops stage 0 at step 2 (a resume there trains nothing); ``--blend`` halves the way."""
    from cleanplate.errors import CheckpointError
    from cleanplate.models.checkpoint import load_checkpoint
    from cleanplate.train.export import blend_states, export_run

    cfg = load_config(smoke_config)
    last = Trainer(cfg, log=lambda m: None, until=2).run()
    state = torch.load(last, weights_only=True)
    assert (state["stage"], state["step"]) == (0, 2)
    logs: list[str] = []
    Trainer(cfg, log=logs.append, until=2).run()
    assert not any("step 3/" in m for m in logs)
    assert torch.equal(
        torch.load(last, weights_only=True)["model"]["backbone.features.0.0.weight"],
        state["model"]["backbone.features.0.0.weight"],
    )
    other = {k: (v + 1 if v.is_floating_point() else v) for k, v in state["model"].items()}
    torch.save({**state, "model": other, "step": 9}, tmp_path / "other.pt")
    out = export_run(last, tmp_path / "m.pt", half=False, blend=(str(tmp_path / "other.pt"), 0.25))
    model, info = load_checkpoint(out)
    key = "backbone.features.0.0.weight"
    assert torch.allclose(model.state_dict()[key], state["model"][key] + 0.25, atol=1e-6)
    with pytest.raises(CheckpointError):
        blend_states(state["model"], {"x": torch.zeros(1)}, 0.5)


def test_subpixel_stage_widens_a_plain_start(smoke_config: Path, tmp_path: Path) -> None:
    """``subpixel = true`` trains GuidedMatting(subpixel=True) from plain weights, widened with zeros."""
    from cleanplate.models.guided import GuidedMatting

    text = smoke_config.read_text()
    text = text[: text.index("[[stages]]")] + (
        '[[stages]]\nkind = "guided"\nsubpixel = true\nsteps = 2\nbatch_size = 2\nsize = [64, 64]\n'
    )
    path = tmp_path / "sub.toml"
    path.write_text(text.replace("bf16 = true", "bf16 = false"))
    start = GuidedMatting()
    torch.nn.init.constant_(start.net.head.bias, 0.01)
    messages: list[str] = []
    trainer = Trainer(load_config(path), init=start.state_dict(), log=messages.append)
    trainer.run()
    final = torch.load(trainer.last_path, weights_only=True)["model"]
    assert final["net.enc.0.0.weight"].shape[1] == start.net.enc[0][0].weight.shape[1] + 8
    assert final["net.head.bias"].shape[0] == 10
    assert not any("from scratch" in m for m in messages)  # every parameter came from the start
    # the export blends the run with its plain start: the start is widened the same way
    from cleanplate.models.checkpoint import load_checkpoint
    from cleanplate.models.checkpoint import save_checkpoint as save
    from cleanplate.train.export import export_run

    save(start, tmp_path / "start.pt")
    model, _ = load_checkpoint(
        export_run(trainer.last_path, tmp_path / "b.pt", half=False, blend=(str(tmp_path / "start.pt"), 1.0))
    )
    widened = GuidedMatting(subpixel=True)
    widened.load_state_dict(widened.adapt_state(start.state_dict()))
    assert model.subpixel
    for key, value in widened.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(model.state_dict()[key], value, atol=1e-6), key


@pytest.mark.slow
def test_sigterm_to_the_whole_process_group_saves_the_steps_done(smoke_config: Path, tmp_path: Path) -> None:
    """``kill -- -PGID``, ``timeout``, Slurm's ``scancel``: the DataLoader worker gets SIGTERM too. It
    must not die first (PyTorch then stops the run with "DataLoader worker ... killed" and only the
    last timed save survives); the main process saves every finished step and exits as interrupted."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    text = smoke_config.read_text().replace("workers = 0", "workers = 1").replace("steps = 3", "steps = 100000")
    config = tmp_path / "long.toml"
    config.write_text(text.replace("bf16 = true", "bf16 = false"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cleanplate.train", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log = tmp_path / "smoke" / "log.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
            time.sleep(0.2)
        assert log.exists(), "the run did not start"
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "DataLoader worker" not in out and "Traceback" not in out, out
    assert proc.returncode != 0 and "interrupted at stage 0 step" in out, out
    done = json.loads(log.read_text().splitlines()[-1])["step"]
    state = torch.load(tmp_path / "smoke" / "last.pt", weights_only=True)
    assert state["stage"] == 0 and state["step"] >= done


def test_weight_average_is_the_mean_of_the_states_it_saw() -> None:
    from cleanplate.train.loop import WeightAverage

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    avg, seen = WeightAverage(), []
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            net[0].weight.fill_(value)
            net[1].running_mean.fill_(-value)
            net[1].num_batches_tracked.fill_(int(value))
        avg.update(net)
        seen.append(value)
    assert avg.count == 3
    assert torch.allclose(avg.mean["0.weight"], torch.full_like(net[0].weight, 3.0))
    assert torch.allclose(avg.mean["1.running_mean"], torch.full((2,), -3.0))
    assert int(avg.mean["1.num_batches_tracked"]) == 6  # integer buffers: the latest


def test_average_from_averages_the_decay_across_a_resume_and_exports_it(smoke_config: Path, tmp_path: Path) -> None:
    """``average_from = 0.5`` over 4 steps: the result is the mean of the weights after steps 3 and 4,
    also when the run is cut after step 3 and resumed; the export ships that mean."""
    from cleanplate.models.checkpoint import load_checkpoint
    from cleanplate.train.export import export_run, initial_weights

    text = smoke_config.read_text()
    text = text[: text.index("[[stages]]")] + (
        '[[stages]]\nkind = "guided"\nsteps = 4\nbatch_size = 2\nsize = [64, 64]\nlr = 1e-2\nwarmup = 0\n'
        "average_from = 0.5\n"
    )
    path = tmp_path / "avg.toml"
    path.write_text(text.replace("bf16 = true", "bf16 = false"))
    cfg = load_config(path)
    last = Trainer(cfg, log=lambda m: None, until=3).run()
    third = torch.load(last, weights_only=True)
    assert third["averaged"] == 1
    Trainer(cfg, log=lambda m: None).run()
    fourth = torch.load(last, weights_only=True)
    assert (fourth["step"], fourth["averaged"]) == (4, 2)
    key = "net.head.weight"
    assert not torch.equal(third["model"][key], fourth["model"][key])
    mean = (third["model"][key] + fourth["model"][key]) / 2
    assert torch.allclose(fourth["average"][key], mean, atol=1e-7)
    model, info = load_checkpoint(export_run(last, tmp_path / "m.pt", half=False))
    assert torch.allclose(model.state_dict()[key], mean, atol=1e-7) and info["meta"]["averaged_steps"] == 2
    assert torch.allclose(initial_weights(str(last))[key], mean, atol=1e-7)
    assert torch.allclose(torch.load(tmp_path / "smoke" / "stage0.pt", weights_only=True)["model"][key], mean)


def test_config_rejects_an_average_outside_the_stage(tmp_path: Path) -> None:
    from cleanplate.errors import InputError

    path = tmp_path / "bad.toml"
    path.write_text('[[stages]]\nkind = "guided"\naverage_from = 1.0\n')
    with pytest.raises(InputError, match="average_from"):
        load_config(path)
