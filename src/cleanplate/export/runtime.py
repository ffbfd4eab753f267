"""Run exported ONNX models in onnxruntime behind the PyTorch model's interface.

:class:`OrtMatting` is called like MattingRefine / MattingBase: ``(src, bgr)`` torch tensors in,
a tuple of torch tensors out (``pha, fgr, pha_sm, fgr_sm, err_sm, ref_sm`` or ``pha, fgr, err,
hid``), so ``cleanplate.load(..., backend='onnxruntime')`` can use it in place of the module.

``from_model`` exports lazily, once per ``backbone_scale`` (the scale is fixed in an ONNX graph and
``Matter`` picks one per resolution), into ``cache_dir`` (reused across runs, keyed by the weights
and options) or a private temporary folder.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._version import __version__
from ..errors import InputError, MissingDependencyError
from .common import check_exportable, cpu_float, model_config, output_names


def _ort():
    try:
        import onnxruntime
    except ModuleNotFoundError as exc:
        raise MissingDependencyError("backend 'onnxruntime' needs onnxruntime: pip install 'cleanplate[onnx]'") from exc
    return onnxruntime


def default_providers(device: torch.device | str | None = None) -> list[str]:
    """CUDA (then CPU) for a CUDA device when this onnxruntime build has it, else CPU."""
    available = _ort().get_available_providers()
    if device is not None and torch.device(device).type == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: str | os.PathLike, providers: list[str] | None = None, threads: int | None = None):
    """An InferenceSession with full graph optimisation and torch's intra-op thread count."""
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise InputError(f"{path}: onnxruntime cannot load it ({str(exc).strip().splitlines()[0]})") from exc


def _weights_key(model: nn.Module, scale: float | None) -> str:
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    config = model_config(model)
    if scale is not None:
        config["backbone_scale"] = repr(float(scale))
    digest.update(repr(sorted(config.items())).encode())
    digest.update(f"{__version__} {torch.__version__}".encode())
    return digest.hexdigest()[:24]


class OrtMatting:
    """An exported matting model in onnxruntime, callable like the PyTorch module."""

    def __init__(
        self,
        session: Any = None,
        *,
        outputs: tuple[str, ...],
        config: dict[str, str],
        model: nn.Module | None = None,
        providers: list[str] | None = None,
        threads: int | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        self.outputs = outputs
        self.config = dict(config)
        self.providers = providers
        self.threads = threads
        self._model = model  # set for from_model: re-exported when backbone_scale changes
        self._sessions: dict[float | None, Any] = {}
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._scale: float | None = float(config["backbone_scale"]) if "backbone_scale" in config else None
        if session is not None:
            self._sessions[self._scale] = session

    # -------------------------------------------------------------------------------- builders
    @classmethod
    def from_file(
        cls, path: str | os.PathLike, *, providers: list[str] | None = None, threads: int | None = None
    ) -> OrtMatting:
        """Open an ONNX file written by ``cleanplate export onnx`` (or with the same input/output names)."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"ONNX model not found: {p}")
        session = make_session(p, providers, threads)
        names = tuple(o.name for o in session.get_outputs())
        inputs = tuple(i.name for i in session.get_inputs())
        if inputs != ("src", "bgr"):
            raise InputError(f"{p}: expected inputs (src, bgr), found ({', '.join(inputs)})")
        config = dict(session.get_modelmeta().custom_metadata_map)
        return cls(session, outputs=names, config=config, providers=providers, threads=threads)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        *,
        providers: list[str] | None = None,
        cache_dir: str | os.PathLike | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        threads: int | None = None,
    ) -> OrtMatting:
        """Wrap a PyTorch MattingBase/MattingRefine; it is exported on first use (per backbone scale)."""
        check_exportable(model)
        if dtype is not None and dtype != torch.float32:
            raise InputError("backend 'onnxruntime' runs float32 models; use precision fp32")
        _ort()  # fail now, with the install hint, rather than on the first frame
        model = cpu_float(model)
        return cls(
            outputs=output_names(model),
            config=model_config(model),
            model=model,
            providers=providers or default_providers(device),
            threads=threads,
            cache_dir=cache_dir,
        )

    # ----------------------------------------------------------------------------- properties
    @property
    def backbone_scale(self) -> float | None:
        return self._scale

    @backbone_scale.setter
    def backbone_scale(self, value: float) -> None:
        if self._scale is None and "backbone_scale" not in self.config:
            return  # MattingBase: no scale
        value = float(value)
        if self._model is None and value != self._scale:
            raise InputError(
                f"this ONNX model was exported with backbone_scale {self._scale}; "
                f"export another one for {value} (cleanplate export onnx --backbone-scale {value})"
            )
        self._scale = value

    @property
    def refines(self) -> bool:
        return len(self.outputs) == 6

    # -------------------------------------------------------------------------------- running
    def _session(self):
        session = self._sessions.get(self._scale)
        if session is None:
            session = self._sessions[self._scale] = make_session(self._export(), self.providers, self.threads)
        return session

    def _export(self) -> Path:
        from .onnx import export_onnx

        model = self._model
        if model is None:  # from_file models always have their session
            raise InputError("no PyTorch model to export from")
        if self._scale is not None and hasattr(model, "backbone_scale"):
            model.backbone_scale = self._scale
        if self._cache_dir is not None:
            folder = self._cache_dir
            folder.mkdir(parents=True, exist_ok=True)
        else:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="cleanplate-onnx-")
            folder = Path(self._tmp.name)
        path = folder / f"{model_config(model)['architecture']}-{_weights_key(model, self._scale)}.onnx"
        if not path.is_file():
            # Checked against PyTorch like the CLI export; the file appears atomically.
            export_onnx(model, path, force=True, check=True)
        return path

    def __call__(self, src: torch.Tensor, bgr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if src.ndim != 4 or src.shape[1] != 3:
            raise InputError(f"src must be (B, 3, H, W); got {tuple(src.shape)}")
        if src.shape != bgr.shape:
            raise InputError(f"src {tuple(src.shape)} and bgr {tuple(bgr.shape)} must have the same shape")
        if self.refines and (src.shape[2] % 4 or src.shape[3] % 4):
            raise InputError(f"MattingRefine needs height and width divisible by 4; got {src.shape[2]}x{src.shape[3]}")
        feeds = {
            "src": src.detach().to("cpu", torch.float32).contiguous().numpy(),
            "bgr": bgr.detach().to("cpu", torch.float32).contiguous().numpy(),
        }
        outs = self._session().run(None, feeds)
        return tuple(torch.from_numpy(o).to(src.device) for o in outs)

    def __repr__(self) -> str:
        arch = self.config.get("architecture", "model")
        return (
            f"OrtMatting({arch}, {self.config.get('backbone', '?')}, scale={self._scale}, providers={self.providers})"
        )
