"""PyTorch → ONNX export with parity check, graph cleanup, TensorRT lint and golden vectors.

:func:`export_bundle` is the one-call path from any ``torch.nn.Module`` and its
:class:`~medfuse.bundle.spec.ModelSpec` to a bundle; its steps are public too
(:func:`export_onnx`, :func:`lint_tensorrt`, :func:`check_parity`, :func:`write_golden`).
torch and onnx are imported only inside the functions that need them.
"""

from __future__ import annotations

from medfuse.export.inputs import random_inputs, study_inputs
from medfuse.export.lint import LintFinding, LintReport, lint_tensorrt
from medfuse.export.onnx_export import DEFAULT_OPSET, OnnxExport, export_onnx
from medfuse.export.parity import (
    PARITY_TOLERANCE,
    OutputParity,
    ParityCase,
    ParityReport,
    check_parity,
    onnx_outputs,
    torch_outputs,
)
from medfuse.export.pipeline import export_bundle, write_golden

__all__ = [
    "DEFAULT_OPSET",
    "PARITY_TOLERANCE",
    "LintFinding",
    "LintReport",
    "OnnxExport",
    "OutputParity",
    "ParityCase",
    "ParityReport",
    "check_parity",
    "export_bundle",
    "export_onnx",
    "lint_tensorrt",
    "onnx_outputs",
    "random_inputs",
    "study_inputs",
    "torch_outputs",
    "write_golden",
]
