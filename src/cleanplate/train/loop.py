"""The training loop: two stages, seeded, resumable from the last checkpoint, CPU or CUDA."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..errors import InputError
from ..models import MattingBase, MattingRefine
from ..models.guided import GuidedMatting
from .config import StageConfig, TrainConfig
from .dataset import Mix, SyntheticMatting, load_training_pool
from .losses import base_loss, refine_loss


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt (main thread only; the old handler comes back)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _worker_ignores_sigterm(worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM: sent to a whole process group (``kill -- -PGID``,
    ``timeout``, a cluster scheduler) it would kill a worker first and PyTorch would stop the run
    with "DataLoader worker ... killed" before the main process saved. The main process stops
    the workers itself when it is done, and a worker exits when its parent is gone."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(cfg: TrainConfig, stage: StageConfig) -> torch.nn.Module:
    if stage.kind in ("guided", "guided_error", "guided_trust"):
        return GuidedMatting(
            backbone_scale=stage.backbone_scale,
            subpixel=stage.subpixel,
            pixel_trust=stage.pixel_trust or stage.kind == "guided_trust",
            trust_hidden=stage.trust_hidden,
        )
    if stage.kind == "base":
        return MattingBase(cfg.backbone)
    return MattingRefine(
        cfg.backbone,
        backbone_scale=stage.backbone_scale,
        refine_mode="sampling",
        refine_sample_pixels=stage.sample_pixels,
    )


def _frozen(model: torch.nn.Module) -> None:
    """Every parameter frozen, BatchNorm in eval mode (its statistics kept): the fitting stages' start."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)


def _error_channel_only(model: GuidedMatting) -> list[torch.nn.Parameter]:
    """Freeze everything but the error channel of the head (eval-mode BatchNorm); its parameters."""
    _frozen(model)
    head = model.net.head
    mask = torch.zeros(head.out_channels, device=head.weight.device)
    mask[GuidedMatting.ERR_CHANNEL] = 1
    head.weight.requires_grad_(True).register_hook(lambda g: g * mask.view(-1, 1, 1, 1))
    head.bias.requires_grad_(True).register_hook(lambda g: g * mask)
    return [head.weight, head.bias]


def _trust_head_only(model: GuidedMatting) -> list[torch.nn.Parameter]:
    """Freeze everything but the per-pixel trust head (eval-mode BatchNorm); its parameters.

    The network's answer stays exactly the one it was trained to give; only the choice between
    the upsampled and the solved alpha at each band pixel is learnt."""
    _frozen(model)
    params = list(model.trust.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def _trainable(model: torch.nn.Module, kind: str) -> list[torch.nn.Parameter]:
    """The parameters a stage of ``kind`` trains (the fitting stages freeze the rest)."""
    if kind == "guided_error":
        return _error_channel_only(model)
    if kind == "guided_trust":
        return _trust_head_only(model)
    return list(model.parameters())


def lr_at(step: int, stage: StageConfig) -> float:
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    start = int(stage.steps * stage.decay_from)
    if step < start:
        return stage.lr
    t = (step - start) / max(1, stage.steps - start)
    return stage.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


class WeightAverage:
    """Uniform running average of a model's weights and BatchNorm statistics (integer buffers: the latest).

    Averaging the weights a run passes through as its learning rate decays (Izmailov et al. 2018,
    stochastic weight averaging) smooths the step-to-step swings of single states: here, holes a
    state punches in one solid subject and the next does not.
    """

    def __init__(self, state: dict[str, torch.Tensor] | None = None, count: int = 0) -> None:
        self.mean = {k: v.detach().clone() for k, v in (state or {}).items()}
        self.count = count

    def update(self, model: torch.nn.Module) -> None:
        self.count += 1
        for key, value in model.state_dict().items():
            value = value.detach()
            if key not in self.mean or not value.is_floating_point():
                self.mean[key] = value.clone()
            else:
                self.mean[key].add_(value - self.mean[key], alpha=1.0 / self.count)


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class _Stopped(Exception):
    """The run reached ``until``: its state is saved at that step."""


class Trainer:
    """Runs the stages of a config; ``until`` stops the first stage it reaches at that step
    (reproduces a run that was cut there: the schedule stays the config's)."""

    def __init__(self, cfg: TrainConfig, *, init: dict | None = None, log=print, until: int | None = None) -> None:
        self.cfg, self.log, self.until = cfg, log, until
        self.device = pick_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.run_dir = Path(cfg.out_dir) / cfg.name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.init = init
        self.subjects, self.backgrounds, self.sources = load_training_pool(
            cfg.gt_dir, cfg.background_dirs, long_side=cfg.long_side
        )
        if not self.backgrounds:
            raise InputError(f"no training backgrounds found in {', '.join(cfg.background_dirs)}")

    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    def _state(self, stage_index: int, step: int, model, opt, average: WeightAverage | None = None) -> dict:
        state = {
            "stage": stage_index,
            "step": step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict() if opt is not None else None,
            "config": self.cfg.to_dict(),
            "sources": self.sources,
        }
        if average is not None and average.count:
            state["average"], state["averaged"] = average.mean, average.count
        return state

    def run(self, *, resume: bool = True) -> Path:
        """Train every stage; return the path of the final checkpoint (a full training state).

        SIGTERM (``kill``, a cluster scheduler's pre-emption, the end of a session) stops it the way
        Ctrl-C does: the steps done are saved and the run resumes from them. A run started in the
        background by a shell ignores SIGINT, so without this only the last timed save survived.
        """
        with _sigterm_as_interrupt():
            return self._run(resume)

    def _run(self, resume: bool) -> Path:
        state = (
            torch.load(self.last_path, map_location="cpu", weights_only=True)
            if resume and self.last_path.exists()
            else None
        )
        start_stage = state["stage"] if state else 0
        weights = state["model"] if state else self.init
        try:
            for index in range(start_stage, len(self.cfg.stages)):
                resume_state = state if state and state["stage"] == index else None
                weights = self._run_stage(index, weights, resume_state)
                state = None
        except _Stopped:
            pass
        return self.last_path

    def _run_stage(self, index: int, weights: dict | None, state: dict | None) -> dict:
        cfg, stage = self.cfg, self.cfg.stages[index]
        torch.manual_seed(cfg.seed + index)
        model = build_model(cfg, stage)
        if weights is not None:
            if isinstance(model, GuidedMatting):
                weights = model.adapt_state(weights)  # a model without the sub-pixel path, widened exactly
            missing, unexpected = model.load_state_dict(weights, strict=False)
            if unexpected:
                self.log(f"ignoring {len(unexpected)} unexpected keys from the previous stage")
            if missing:
                self.log(f"stage {index}: {len(missing)} new parameters start from scratch ({missing[0]}, ...)")
        model.to(self.device).train()
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        params = _trainable(model, stage.kind)
        opt = torch.optim.Adam(params, lr=stage.lr)
        step = 0
        if state is not None and state.get("optimizer") is not None:
            opt.load_state_dict(state["optimizer"])
            step = state["step"]
            self.log(f"resuming stage {index} at step {step}")
        if self.until is not None and step >= self.until:  # already there (a resumed cut run)
            raise _Stopped
        average = None
        if stage.average_from is not None:
            average_start = int(stage.steps * stage.average_from)
            kept = state.get("average") if state is not None else None
            average = WeightAverage(kept, state.get("averaged", 0) if kept is not None else 0)
            if kept is None and step > average_start:
                self.log(f"stage {index}: weight average from step {step} (no average kept before it)")
        mix = Mix(**cfg.mix)
        data = SyntheticMatting(self.subjects, self.backgrounds, stage.size, seed=cfg.seed * 1000 + index, mix=mix)
        indices = range(step * stage.batch_size, stage.steps * stage.batch_size)
        loader = DataLoader(
            data,
            batch_size=stage.batch_size,
            sampler=indices,
            num_workers=cfg.workers,
            persistent_workers=cfg.workers > 0,
            prefetch_factor=4 if cfg.workers > 0 else None,
            worker_init_fn=_worker_ignores_sigterm if cfg.workers > 0 else None,
        )
        if stage.kind == "base":
            loss_fn = base_loss
        else:  # guided: the same 6 outputs as refine
            loss_fn = functools.partial(
                refine_loss,
                premultiplied_targets=stage.premultiplied_targets,
                edge_fgr=stage.edge_fgr,
                soft_alpha=stage.soft_alpha,
            )
        amp = self._autocast()
        last_save, t0, first_step = time.monotonic(), time.monotonic(), step
        try:
            for batch in loader:
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, stage)
                src, bgr, pha, fgr = (batch[k].to(self.device, non_blocking=True) for k in ("src", "bgr", "pha", "fgr"))
                if cfg.channels_last:
                    src, bgr = (
                        src.contiguous(memory_format=torch.channels_last),
                        bgr.contiguous(memory_format=torch.channels_last),
                    )
                with amp:
                    outputs = model(src, bgr)
                outputs = tuple(o.float() for o in outputs)
                loss, terms = loss_fn(outputs, pha, fgr)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                if average is not None and step > average_start:
                    average.update(model)
                if step % cfg.log_every == 0 or step == stage.steps:
                    rate = (step - first_step) / (time.monotonic() - t0)
                    eta = (stage.steps - step) / max(rate, 1e-9)
                    parts = " ".join(f"{k}={float(v.detach()):.4f}" for k, v in terms.items())
                    self.log(
                        f"stage {index} ({stage.kind}) step {step}/{stage.steps} "
                        f"loss={float(loss.detach()):.4f} {parts} "
                        f"lr={lr_at(step, stage):.2e} {rate:.2f} it/s eta {eta / 60:.1f} min"
                    )
                    self._write_log(
                        {
                            "stage": index,
                            "step": step,
                            "loss": float(loss.detach()),
                            **{k: float(v.detach()) for k, v in terms.items()},
                        }
                    )
                if time.monotonic() - last_save > cfg.save_every_s or step == stage.steps:
                    _atomic_save(self._state(index, step, model, opt, average), self.last_path)
                    last_save = time.monotonic()
                if self.until is not None and step >= self.until:
                    _atomic_save(self._state(index, step, model, opt, average), self.last_path)
                    self.log(f"stopped at stage {index} step {step} (--until)")
                    raise _Stopped
        except KeyboardInterrupt:
            # Ctrl-C: keep every finished step, so --resume goes on from here and not the last timed save.
            _atomic_save(self._state(index, step, model, opt, average), self.last_path)
            self.log(f"interrupted at stage {index} step {step}; saved {self.last_path} (resume to go on)")
            raise
        result = average.mean if average is not None and average.count else model.state_dict()
        if index + 1 < len(cfg.stages):  # the next stage starts from this stage's result
            final = self._state(index + 1, 0, model, opt)
            final["model"] = result
        else:
            final = self._state(index, step, model, opt, average)
        _atomic_save(final, self.last_path)
        _atomic_save({"model": result, "stage": index}, self.run_dir / f"stage{index}.pt")
        return result

    def _autocast(self):
        if not self.cfg.bf16:
            return torch.autocast(self.device.type, enabled=False)
        # bf16 needs no loss scaling: AMX on recent CPUs, tensor cores on Ampere and later GPUs.
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _write_log(self, row: dict) -> None:
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
