"""Built-in models by name: what ``cleanplate.load('default')`` and ``--model classical`` mean.

``default``: the bundled cleanplate-format checkpoint (mobilenetv2 MattingRefine) in
``cleanplate/weights/default.pt``. ``classical``: a non-network difference keyer, useful as a
baseline and when no weights are available.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import CheckpointError, MissingDependencyError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.pt"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    description: str
    network: bool  # accepts the MattingRefine refine options

    def available(self) -> bool:
        if self.name == "default":
            return DEFAULT_WEIGHTS.is_file()
        if self.name == "classical":
            return importlib.util.find_spec("cleanplate.models.classical") is not None
        return False


BUILTINS: dict[str, BuiltinModel] = {
    "default": BuiltinModel("default", "MattingRefine mobilenetv2 trained by cleanplate (bundled weights)", True),
    "classical": BuiltinModel("classical", "difference keyer against the plate, no neural network", False),
}


def list_models() -> list[str]:
    """Names accepted by ``cleanplate.load`` besides checkpoint paths."""
    return list(BUILTINS)


def is_builtin(name: object) -> bool:
    return isinstance(name, str) and name in BUILTINS


def create_builtin(name: str, **model_kwargs: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Instantiate a built-in model; returns ``(model, info)`` like ``load_checkpoint``."""
    if name == "default":
        if not DEFAULT_WEIGHTS.is_file():
            raise CheckpointError(
                "the built-in default model is not installed in this build of cleanplate; "
                "pass a checkpoint with --model PATH (e.g. an official BGMv2 .pth) or use --model classical"
            )
        from .checkpoint import load_checkpoint

        model, info = load_checkpoint(DEFAULT_WEIGHTS, **model_kwargs)
        return model, {**info, "name": "default"}
    if name == "classical":
        try:
            module = importlib.import_module("cleanplate.models.classical")
        except ModuleNotFoundError as exc:
            if exc.name != "cleanplate.models.classical":
                raise MissingDependencyError(f"the classical model needs {exc.name}, which is not installed") from exc
            raise CheckpointError("the classical model is not part of this build of cleanplate") from exc
        model = module.ClassicalMatting(**model_kwargs)
        return model.eval(), {"name": "classical", "architecture": "ClassicalMatting", "format": "builtin"}
    raise CheckpointError(f"unknown model {name!r}; use a checkpoint path or one of: {', '.join(BUILTINS)}")
