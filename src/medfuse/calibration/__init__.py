"""Quantization and calibration: INT8 Q/DQ and FP16 variants behind an accuracy gate.

- :func:`quantize_bundle` — the whole run (the ``medfuse quantize`` verb calls it);
- :class:`QuantizeConfig`, :class:`GateConfig`, :class:`CpuCandidate` — frozen options, in ONNX
  Runtime's vocabulary (``calibrate_method``, ``per_channel``, ``nodes_to_exclude``, QDQ);
- :class:`DicomCalibrationReader` — ``get_next()`` over DICOM studies, through the runtime's
  preprocessing;
- :func:`check_qdq` — TensorRT's Q/DQ rules as a reusable checker;
- :func:`evaluate_gate`, :func:`layer_errors` — the gate and the sensitivity ranking.

onnx and onnxruntime are imported inside the functions that need them, so importing this
package is cheap.
"""

from __future__ import annotations

from medfuse.calibration.api import QuantizeResult, VariantOutcome, quantize_bundle
from medfuse.calibration.config import CpuCandidate, GateConfig, QuantizeConfig
from medfuse.calibration.gate import GateResult, evaluate_gate
from medfuse.calibration.qdq_rules import QdqReport, QdqViolation, check_qdq
from medfuse.calibration.reader import DicomCalibrationReader, scan_studies
from medfuse.calibration.sensitivity import LayerError, layer_errors

__all__ = [
    "CpuCandidate",
    "DicomCalibrationReader",
    "GateConfig",
    "GateResult",
    "LayerError",
    "QdqReport",
    "QdqViolation",
    "QuantizeConfig",
    "QuantizeResult",
    "VariantOutcome",
    "check_qdq",
    "evaluate_gate",
    "layer_errors",
    "quantize_bundle",
    "scan_studies",
]
