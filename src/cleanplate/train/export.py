"""From a training run to a shippable model file, and back (fine-tuning from the shipped model)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError


def initial_weights(init: str) -> dict[str, torch.Tensor]:
    """State dict to start from: 'default' (shipped model) or any checkpoint path."""
    from ..models.checkpoint import load_checkpoint
    from ..models.registry import checkpoint_path

    model, _ = load_checkpoint(checkpoint_path(init))
    return model.state_dict()


def export_run(
    state_path: str | Path, out: str | Path, *, force: bool = False, half: bool = True, meta: dict | None = None
) -> Path:
    """Write the model of a training state as a cleanplate checkpoint (fp16 storage by default)."""
    from ..models.checkpoint import save_checkpoint
    from ..train.config import StageConfig, TrainConfig
    from ..train.loop import build_model

    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if "model" not in state or "config" not in state:
        raise CheckpointError(f"{state_path} is not a cleanplate training state")
    cfg_dict = state["config"]
    stages = [StageConfig(**s) for s in cfg_dict["stages"]]
    cfg = TrainConfig(**{**cfg_dict, "stages": stages})
    stage = stages[min(state["stage"], len(stages) - 1)]
    model = build_model(cfg, stage)
    model.load_state_dict(state["model"])
    info = {
        "training_config": cfg_dict,
        "sources": state.get("sources", []),
        "stage": state["stage"],
        "step": state["step"],
    }
    info.update(meta or {})
    save_checkpoint(model, out, meta=info, half=half, force=force)
    return Path(out)
