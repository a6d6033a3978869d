"""FP16 variant: FP16 weights and activations, numerically sensitive ops kept in FP32."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from medfuse._deps import require
from medfuse.calibration.config import QuantizeConfig
from medfuse.errors import CalibrationError

__all__ = ["convert_fp16"]

logger = logging.getLogger(__name__)

_FP16_MAX = 65504.0


def convert_fp16(fp32_path: Path, out: Path, config: QuantizeConfig) -> Path:
    """Write an FP16 copy of ``fp32_path`` that ONNX Runtime's CPU provider can run.

    Ops in ``config.fp16_op_block_list`` stay FP32, and so do nodes that consume a constant
    beyond FP16's range (|x| > 65504); inputs and outputs stay FP32 when
    ``config.keep_io_types``.

    Raises
    ------
    CalibrationError
        The converter failed.
    """
    onnx = require("onnx", purpose="FP16 conversion", extra="quantize")
    f16 = require("onnxconverter_common.float16", purpose="FP16 conversion", extra="quantize")
    model = onnx.load(str(fp32_path))
    big = {
        i.name
        for i in model.graph.initializer
        if i.data_type == onnx.TensorProto.FLOAT
        and np.abs(onnx.numpy_helper.to_array(i)).max(initial=0.0) > _FP16_MAX
    }
    # Casts keep their declared output type only in FP32 (the converter does not retarget them).
    node_block = [
        n.name for n in model.graph.node if any(x in big for x in n.input) or n.op_type == "Cast"
    ]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the converter warns on every clamped constant
            converted = f16.convert_float_to_float16(
                model,
                keep_io_types=config.keep_io_types,
                op_block_list=list(config.fp16_op_block_list),
                node_block_list=node_block,
            )
    except Exception as exc:
        raise CalibrationError(f"FP16 conversion failed ({type(exc).__name__}: {exc})") from exc
    onnx.save(converted, str(out))
    logger.info("FP16 conversion: %d node(s) kept FP32 for large constants", len(node_block))
    return out
