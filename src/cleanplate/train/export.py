"""From a training run to a shippable model file, and back (fine-tuning from the shipped model)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError


def is_training_state(obj: object) -> bool:
    """A ``runs/<name>/last.pt``-style dict (model, config, step), as opposed to a model checkpoint."""
    return isinstance(obj, dict) and all(key in obj for key in ("model", "config", "step"))


def initial_weights(init: str) -> dict[str, torch.Tensor]:
    """State dict to start from: a built-in name ('default'), a model checkpoint or a training state.

    A training state (``runs/<name>/last.pt`` or a copy of it) gives its model's weights, so a
    second stage can start from a named step of the first without exporting it first.
    """
    from ..models.checkpoint import load_checkpoint
    from ..models.registry import checkpoint_path

    path = checkpoint_path(init)
    if Path(path).is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # not a torch file at all: load_checkpoint says why in one line
            state = None
        if is_training_state(state):
            return state.get("average", state["model"])  # a weight-averaged run: its average
    model, _ = load_checkpoint(path)
    return model.state_dict()


def blend_states(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], t: float) -> dict[str, torch.Tensor]:
    """``(1 - t) * ours + t * theirs`` for every floating-point tensor (WiSE-FT weight interpolation).

    Blending a fine-tuned model with the model it started from keeps much of what the start knew
    and the fine-tune forgot (here: the objects, while the fine-tune learnt the people). Both must
    have the same keys and shapes; integer tensors (BatchNorm step counters) come from ``ours``.
    """
    if not 0.0 <= t <= 1.0:
        raise CheckpointError(f"blend weight must be in [0, 1]; got {t}")
    if ours.keys() != theirs.keys():
        diff = sorted(set(ours) ^ set(theirs))
        raise CheckpointError(f"cannot blend models with different layers (e.g. {diff[0]})")
    out = {}
    for key, a in ours.items():
        b = theirs[key]
        if a.shape != b.shape:
            raise CheckpointError(f"cannot blend {key}: shapes {tuple(a.shape)} and {tuple(b.shape)}")
        out[key] = (a.double() * (1 - t) + b.double() * t).to(a.dtype) if a.is_floating_point() else a
    return out


def export_run(
    state_path: str | Path,
    out: str | Path,
    *,
    force: bool = False,
    half: bool = True,
    meta: dict | None = None,
    blend: tuple[str, float] | None = None,
) -> Path:
    """Write the model of a training state as a cleanplate checkpoint (fp16 storage by default).

    ``blend=(weights, t)`` first interpolates the run's weights towards ``weights`` (a built-in
    name, checkpoint or training state, see :func:`initial_weights`) by ``t``.
    """
    from ..models.checkpoint import save_checkpoint
    from ..models.guided import GuidedMatting
    from ..train.config import StageConfig, TrainConfig
    from ..train.loop import build_model

    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if not is_training_state(state):
        raise CheckpointError(f"{state_path} is not a cleanplate training state")
    cfg_dict = state["config"]
    stages = [StageConfig(**s) for s in cfg_dict["stages"]]
    cfg = TrainConfig(**{**cfg_dict, "stages": stages})
    stage = stages[min(state["stage"], len(stages) - 1)]
    model = build_model(cfg, stage)
    weights = state.get("average", state["model"])  # a weight-averaged stage ships its average
    if blend is not None:
        theirs = initial_weights(blend[0])
        if isinstance(model, GuidedMatting):
            theirs = model.adapt_state(theirs)  # a plain start, widened, blends with a sub-pixel run
        weights = blend_states(weights, theirs, blend[1])
    model.load_state_dict(weights)
    info = {
        "training_config": cfg_dict,
        "sources": state.get("sources", []),
        "stage": state["stage"],
        "step": state["step"],
    }
    if "average" in state:
        info["averaged_steps"] = state.get("averaged", 0)
    if blend is not None:
        info["blend"] = {"with": str(blend[0]), "t": blend[1]}
    info.update(meta or {})
    save_checkpoint(model, out, meta=info, half=half, force=force)
    return Path(out)
