"""Training configuration: every hyper-parameter in one TOML file, validated on load."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import InputError

STAGE_KINDS = ("base", "refine", "guided", "guided_error", "guided_trust")


@dataclass
class StageConfig:
    """One stage: ``base`` trains MattingBase; ``refine`` trains MattingRefine end to end;
    ``guided`` trains the plate-guided GuidedMatting (the default model) end to end;
    ``guided_error`` fits only its error-map channel on the frozen network (BatchNorm statistics
    kept), so a finished model gains a calibrated error map without any other output moving;
    ``guided_trust`` adds the per-pixel trust head of the edge step and fits only it, the same way."""

    kind: str = "base"
    steps: int = 3000
    batch_size: int = 8
    size: tuple[int, int] = (256, 256)
    lr: float = 3e-4
    warmup: int = 100
    decay_from: float = 0.7  # cosine decay over the last 30% of the stage
    backbone_scale: float = 0.5
    sample_pixels: int = 16384
    subpixel: bool = False  # guided: the full-resolution sub-pixel path of GuidedMatting
    pixel_trust: bool = False  # guided: the per-pixel trust head of the edge step (guided_trust trains only it)
    trust_hidden: tuple[int, ...] = (32, 32)  # the trust head's hidden widths (1x1 convolutions, per pixel)
    # the stage's result is the uniform average of the weights after every step from this fraction
    # of its steps on (stochastic weight averaging over the lr decay); None: the last step's weights
    average_from: float | None = None
    # refine and guided stages (see losses.py): the coarse foreground target averaged with alpha
    # weights, the weight of an L1 term on the upsampled coarse foreground at partial alpha, and the
    # extra weight of the full-resolution alpha error at partial alpha
    premultiplied_targets: bool = False
    edge_fgr: float = 0.0
    soft_alpha: float = 0.0


@dataclass
class TrainConfig:
    name: str = "default"
    backbone: str = "mobilenetv2"
    seed: int = 0
    gt_dir: str = "../shared/data/train/gt"
    background_dirs: list[str] = field(default_factory=lambda: ["../shared/data/train/backgrounds"])
    long_side: int = 768
    out_dir: str = "runs"
    device: str = "auto"
    bf16: bool = True  # bf16 autocast (AMX on CPU, tensor cores on CUDA)
    channels_last: bool = True
    workers: int = 1
    threads: int = 0  # torch threads; 0 = leave torch's default
    save_every_s: float = 300.0
    log_every: int = 20
    mix: dict = field(default_factory=dict)
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig()])

    def to_dict(self) -> dict:
        return asdict(self)


def _build(cls, data: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"{where}: unknown setting(s) {', '.join(unknown)}")
    return cls(**data)


def load_config(path: str | Path, overrides: dict | None = None) -> TrainConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}") from None
    data.update(overrides or {})
    stages = [_build(StageConfig, dict(s), f"{path} [[stages]]") for s in data.pop("stages", [{}])]
    for s in stages:
        s.size = tuple(s.size)
        s.trust_hidden = tuple(int(h) for h in s.trust_hidden)
        if not s.trust_hidden or min(s.trust_hidden) < 1:
            raise InputError(f"{path}: trust_hidden must list one or more positive widths, got {list(s.trust_hidden)}")
        if s.kind not in STAGE_KINDS:
            raise InputError(f"{path}: stage kind must be one of {', '.join(STAGE_KINDS)}, got {s.kind!r}")
        if s.average_from is not None and not 0.0 <= s.average_from < 1.0:
            raise InputError(f"{path}: average_from must be in [0, 1), got {s.average_from}")
    cfg = _build(TrainConfig, data, str(path))
    cfg.stages = stages
    # Relative data paths are relative to the config file's folder.
    base = path.parent
    cfg.gt_dir = str((base / cfg.gt_dir).resolve()) if not Path(cfg.gt_dir).is_absolute() else cfg.gt_dir
    cfg.out_dir = str((base / cfg.out_dir).resolve()) if not Path(cfg.out_dir).is_absolute() else cfg.out_dir
    cfg.background_dirs = [str((base / d).resolve()) if not Path(d).is_absolute() else d for d in cfg.background_dirs]
    return cfg
