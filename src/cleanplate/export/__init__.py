"""Export MattingBase/MattingRefine to ONNX and TorchScript, and run exported ONNX models.

The exported graph is the optimized path of :mod:`cleanplate.models.fast` (BatchNorm folded,
static-shape sampling refiner), validated against the straightforward PyTorch model. See
:mod:`cleanplate.export.onnx` for the model spec (input/output names, shapes, dynamic axes).
"""

from .onnx import EXPORTERS, ExportResult, export_onnx
from .torchscript import export_torchscript

__all__ = ["EXPORTERS", "ExportResult", "export_onnx", "export_torchscript"]
