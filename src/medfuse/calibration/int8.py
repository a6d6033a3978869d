"""INT8 Q/DQ variants with ONNX Runtime's quantizer: TensorRT layout and CPU layouts.

The TensorRT variant (``int8``): explicit Q/DQ, symmetric int8 activations and weights (zero
point 0), per-channel weights on axis 0, per-tensor activations, Q/DQ on the inputs of Conv /
Gemm / MatMul and of residual Adds (bias Adds with a constant input stay in float), Conv /
Gemm biases in float (TensorRT's parser takes DequantizeLinear only on INT8 / FP8 / FP4 / INT4
inputs, never an INT32 bias), opset ≥ 13.
It is checked with :func:`medfuse.calibration.check_qdq` before it is used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medfuse._deps import require
from medfuse.calibration._ort import quiet_quantizer
from medfuse.calibration.config import CpuCandidate, QuantizeConfig
from medfuse.calibration.qdq_rules import non_residual_adds
from medfuse.calibration.ranges import CalibrationRanges, ort_method
from medfuse.errors import CalibrationError

__all__ = ["check_quantizable", "quantize_int8"]

logger = logging.getLogger(__name__)

_DOMAINS = ("", "ai.onnx", "com.microsoft")
TENSORRT = CpuCandidate(
    "QInt8", "QInt8", reduce_range=False, activation_symmetric=True, quantize_bias=False
)
"""TensorRT's layout: symmetric int8 activations and weights, biases kept float (TensorRT's
ONNX parser refuses a DequantizeLinear of an INT32 bias; it folds the float bias itself)."""


def check_quantizable(fp32_path: Path, config: QuantizeConfig) -> None:
    """Refuse a graph the INT8 path cannot handle, before any study is read.

    Raises
    ------
    CalibrationError
        Opset below 13, ops from a custom domain, or nothing to quantize.
    """
    onnx = require("onnx", purpose="INT8 quantization", extra="quantize")
    model = onnx.load(str(fp32_path), load_external_data=False)
    opset = max((o.version for o in model.opset_import if o.domain in _DOMAINS[:2]), default=0)
    if opset < 13:
        raise CalibrationError(
            f"the fp32 graph uses opset {opset}; INT8 Q/DQ (per-channel axis) needs opset >= 13; "
            "re-export the model with opset 17 or newer"
        )
    custom = sorted(
        {f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in _DOMAINS}
    )
    if custom:
        raise CalibrationError(
            f"the fp32 graph has op(s) from custom domains that Q/DQ cannot handle: {custom}; "
            "export them as standard ONNX ops"
        )
    ops = set(config.op_types_to_quantize)
    if not any(n.op_type in ops for n in model.graph.node):
        raise CalibrationError(
            f"the fp32 graph has no {'/'.join(sorted(ops))} node to quantize; INT8 would not help"
        )


def quantize_int8(
    fp32_path: Path,
    out: Path,
    ranges: CalibrationRanges,
    config: QuantizeConfig,
    *,
    layout: CpuCandidate = TENSORRT,
    nodes_to_exclude: Sequence[str] = (),
    float_adds: Sequence[str] | None = None,
) -> Path:
    """Write a Q/DQ model of ``fp32_path`` to ``out`` from cached calibration ranges.

    Parameters
    ----------
    fp32_path:
        The FP32 ONNX model.
    out:
        Where to write the quantized model.
    ranges:
        Ranges from :func:`medfuse.calibration.ranges.calibrate_ranges` (no study is read).
    config:
        ``per_channel``, ``op_types_to_quantize``, ``nodes_to_exclude``.
    layout:
        Activation / weight types, reduce_range and symmetry; the default is TensorRT's.
    nodes_to_exclude:
        Extra nodes kept in float (from the sensitivity search).
    float_adds:
        :func:`~medfuse.calibration.qdq_rules.non_residual_adds` of ``fp32_path`` when the
        caller has it (a run quantizes one model many times); ``None``: found here.

    Raises
    ------
    CalibrationError
        ONNX Runtime's quantizer failed, or ``layout`` quantizes none of the configured ops.
    """
    q = require("onnxruntime.quantization", purpose="INT8 quantization", extra="quantize")
    exclude = list(dict.fromkeys([*config.nodes_to_exclude, *nodes_to_exclude]))
    # Only residual Adds get Q/DQ (TensorRT's placement rule; on CPU too: a quantized attention
    # mask add or bias add costs accuracy and buys nothing).
    adds = non_residual_adds(fp32_path) if float_adds is None else float_adds
    exclude += [n for n in adds if n not in exclude]
    ops = layout.quantized_ops(config.op_types_to_quantize)
    if not ops:
        raise CalibrationError(
            f"layout {layout.label!r} quantizes none of the configured op types "
            f"{list(config.op_types_to_quantize)}; add one of them to op_types_to_quantize"
        )
    extra: dict[str, Any] = {
        "ActivationSymmetric": layout.activation_symmetric,
        "WeightSymmetric": True,
        "QDQKeepRemovableActivations": False,
        "QuantizeBias": layout.quantize_bias,
    }
    try:
        with quiet_quantizer():
            q.quantize_static(
                str(fp32_path),
                str(out),
                None,
                quant_format=q.QuantFormat.QDQ,
                op_types_to_quantize=list(ops),
                per_channel=config.per_channel,
                reduce_range=layout.reduce_range,
                activation_type=getattr(q.QuantType, layout.activation_type),
                weight_type=getattr(q.QuantType, layout.weight_type),
                nodes_to_exclude=exclude,
                calibrate_method=ort_method(ranges.method),
                calibration_cache_path=str(ranges.path),
                extra_options=extra,
            )
    except Exception as exc:
        raise CalibrationError(
            f"ONNX Runtime could not quantize the graph ({type(exc).__name__}: {exc}); "
            "exclude the failing nodes with nodes_to_exclude"
        ) from exc
    logger.info("quantized (%s), %d node(s) excluded", layout.label, len(exclude))
    return out
