"""PyTorch → ONNX export with parity check, graph cleanup, TensorRT lint and golden vectors.

:func:`export_from_source` is what ``medfuse export`` runs (a model file or ``module:factory``
and a spec file → a bundle and its reports); :func:`export_bundle` is the one-call path from
any ``torch.nn.Module`` and its
:class:`~medfuse.bundle.spec.ModelSpec` to a bundle (a spec from a file with :func:`load_spec`
or from the builders :func:`ct_volume`, :func:`radiograph`, :func:`presence`… and
:func:`model_spec`); its steps are public too
(:func:`export_onnx`, :func:`lint_tensorrt`, :func:`check_parity`, :func:`write_golden`).
torch and onnx are imported only inside the functions that need them.
"""

from __future__ import annotations

from medfuse.export.from_source import ExportRun, export_from_source
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
from medfuse.export.sources import LoadedModel, load_model
from medfuse.export.spec_builders import (
    PresenceInput,
    classification,
    ct_volume,
    model_spec,
    mr_volume,
    presence,
    radiograph,
    regression,
    scalar,
    segmentation,
)
from medfuse.export.spec_file import load_spec, spec_from_dict, spec_schema

__all__ = [
    "DEFAULT_OPSET",
    "PARITY_TOLERANCE",
    "ExportRun",
    "LintFinding",
    "LintReport",
    "LoadedModel",
    "OnnxExport",
    "OutputParity",
    "ParityCase",
    "ParityReport",
    "PresenceInput",
    "check_parity",
    "classification",
    "ct_volume",
    "export_bundle",
    "export_from_source",
    "export_onnx",
    "lint_tensorrt",
    "load_model",
    "load_spec",
    "model_spec",
    "mr_volume",
    "onnx_outputs",
    "presence",
    "radiograph",
    "random_inputs",
    "regression",
    "scalar",
    "segmentation",
    "spec_from_dict",
    "spec_schema",
    "study_inputs",
    "torch_outputs",
    "write_golden",
]
