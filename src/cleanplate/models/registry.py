"""The one way in to a model: :func:`create_model` (a built-in name, a checkpoint path, or a module).

Built-ins are described by one :class:`ModelConfig` each (timm-style: name, what it is, how to
build it, which weights), so adding one is one entry in :data:`BUILTINS`:

``default``: the plate-guided network (:mod:`cleanplate.models.guided`) in
``cleanplate/weights/default.pt``. ``bgmv2``: the previous default, a mobilenetv2 MattingRefine in
the official layout (``cleanplate/weights/bgmv2.pt``; fine-tune or export it like an official
checkpoint). ``classical``: a non-network difference keyer, the baseline, needing no weights.

Above :mod:`.checkpoint` (which knows file formats, not names): the checkpoint loader never
imports the registry, so the two cannot import each other.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import CheckpointError, InputError, MissingDependencyError
from ..options import REFINE_OPTIONS
from .checkpoint import load_checkpoint

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.pt"
BGMV2_WEIGHTS = WEIGHTS_DIR / "bgmv2.pt"


@dataclass(frozen=True)
class ModelConfig:
    """A built-in model.

    ``factory`` is ``"module:callable"``, imported on first use: called as ``callable(weights_path,
    **options)`` when the model has ``weights`` (a file in ``cleanplate/weights/``), else as
    ``callable(**options)``; it returns a module or ``(module, info)``. ``refine_options``: the
    model takes MattingRefine's options (``backbone_scale``, ``refine_mode``, ...); for the others
    those options are refused with one line, and any other keyword goes to the factory.
    """

    name: str
    description: str
    factory: str
    weights: str | None = None
    refine_options: bool = False

    @property
    def weights_path(self) -> Path | None:
        return WEIGHTS_DIR / self.weights if self.weights else None

    @property
    def network(self) -> bool:
        """Accepts the MattingRefine refine options (kept for code that read the old field)."""
        return self.refine_options

    def available(self) -> bool:
        """Installed in this build: its code importable and its weights file present."""
        path = self.weights_path
        if path is not None and not path.is_file():
            return False
        return importlib.util.find_spec(self.factory.partition(":")[0]) is not None

    def create(self, **options: Any) -> tuple[nn.Module, dict[str, Any]]:
        """Build the model; returns ``(model, info)`` like :func:`~.checkpoint.load_checkpoint`."""
        refine = sorted(k for k in options if k in REFINE_OPTIONS)
        if refine and not self.refine_options:
            raise InputError(f"options {', '.join(sorted(options))} do not apply to the {self.name} model")
        path = self.weights_path
        if path is not None and not path.is_file():
            raise CheckpointError(
                f"the built-in {self.name} model is not installed in this build of cleanplate; "
                "pass a checkpoint with --model PATH (e.g. an official BGMv2 .pth) or use --model classical"
            )
        factory = self._factory()
        scale = options.pop("backbone_scale", None) if self.refine_options else None
        made = factory(path, **options) if path is not None else factory(**options)
        model, info = made if isinstance(made, tuple) else (made, {"architecture": type(made).__name__})
        if scale is not None and hasattr(model, "backbone_scale"):
            model.backbone_scale = float(scale)
        return model.eval(), {**info, "name": self.name, **({} if path is not None else {"format": "builtin"})}

    def _factory(self) -> Any:
        module_name, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise MissingDependencyError(f"the {self.name} model needs {exc.name}, which is not installed") from exc
            raise CheckpointError(f"the {self.name} model is not part of this build of cleanplate") from exc
        return getattr(module, attr)


BUILTINS: dict[str, ModelConfig] = {}


def register_model(config: ModelConfig) -> ModelConfig:
    """Add (or replace) a built-in model by its name."""
    BUILTINS[config.name] = config
    return config


register_model(
    ModelConfig(
        "default",
        "plate-guided network with sub-pixel plate features: keyed plate features, learned correction, "
        "per-pixel detail, full-resolution edges with a learned per-pixel trust (bundled weights)",
        "cleanplate.models.checkpoint:load_checkpoint",
        weights="default.pt",
        refine_options=True,  # backbone_scale only; BGMv2's refiner options are refused by the loader
    )
)
register_model(
    ModelConfig(
        "fast",
        "the plate-guided network without the sub-pixel path (the previous default): about 20 % faster, "
        "softer hair (bundled weights)",
        "cleanplate.models.checkpoint:load_checkpoint",
        weights="fast.pt",
        refine_options=True,  # backbone_scale only, as for the default
    )
)
register_model(
    ModelConfig(
        "bgmv2",
        "MattingRefine mobilenetv2 trained by cleanplate, official BGMv2 layout (the previous default)",
        "cleanplate.models.checkpoint:load_checkpoint",
        weights="bgmv2.pt",
        refine_options=True,
    )
)
register_model(
    ModelConfig(
        "classical",
        "difference keyer against the plate, no neural network",
        "cleanplate.models.classical:ClassicalMatting",
    )
)

BuiltinModel = ModelConfig  # the old name


def list_models() -> list[str]:
    """Names accepted by ``cleanplate.load`` besides checkpoint paths."""
    return list(BUILTINS)


def is_builtin(name: object) -> bool:
    return isinstance(name, str) and name in BUILTINS


def model_config(name: str) -> ModelConfig:
    if name not in BUILTINS:
        raise CheckpointError(f"unknown model {name!r}; use a checkpoint path or one of: {', '.join(BUILTINS)}")
    return BUILTINS[name]


def create_builtin(name: str, **options: Any) -> tuple[nn.Module, dict[str, Any]]:
    """Instantiate a built-in model; returns ``(model, info)`` like ``load_checkpoint``."""
    return model_config(name).create(**options)


def checkpoint_path(name_or_path: str | os.PathLike) -> Path:
    """The file behind a checkpoint path or a built-in name (a missing bare name lists the built-ins)."""
    path = Path(name_or_path)
    if not path.exists() and is_builtin(str(name_or_path)):
        config = BUILTINS[str(name_or_path)]
        if config.weights_path is None:
            raise CheckpointError(f"{config.name}: built-in model without weights (no checkpoint)")
        if not config.weights_path.is_file():
            config.create()  # raises the "not installed" error
        return config.weights_path
    if not path.exists() and path.suffix == "" and len(path.parts) == 1:
        raise CheckpointError(f"checkpoint not found: {path} (built-in models: {', '.join(BUILTINS)})")
    return path


def create_model(name_or_path: str | os.PathLike | nn.Module | None = None, **options: Any):
    """The model for a built-in name, a checkpoint path (either format) or an ``nn.Module``, and its info.

    ``options`` are the model's: for networks MattingRefine's refine options (``backbone`` must
    agree with the checkpoint; ``backbone_scale`` is set on the model), for the keyer its
    parameters. None means ``'default'``. Returns ``(model, info)``, the model in eval mode on CPU.
    """
    if isinstance(name_or_path, nn.Module):
        extra = sorted(k for k in options if k != "backbone_scale")
        if extra:
            raise InputError(f"options {', '.join(extra)} cannot be applied to an existing module")
        return name_or_path, {"name": type(name_or_path).__name__, "format": "module"}
    if name_or_path is None:
        name_or_path = "default"
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InputError(f"model must be a checkpoint path or a built-in name; got {type(name_or_path).__name__}")
    if is_builtin(str(name_or_path)) and not Path(name_or_path).exists():
        return BUILTINS[str(name_or_path)].create(**options)
    path = checkpoint_path(name_or_path)
    scale = options.pop("backbone_scale", None)
    model, info = load_checkpoint(path, **options)
    if scale is not None and hasattr(model, "backbone_scale"):
        model.backbone_scale = float(scale)
    return model, info
