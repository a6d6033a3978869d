"""Per-node sensitivity of a Q/DQ model: where does quantization error enter?

Every quantized compute node's output is exposed as a graph output of both the FP32 and the
Q/DQ model; on a few samples the relative error ``||q - f|| / ||f||`` of each is measured. A
node's *local* error is its error minus the largest error already present on its inputs, so the
ranking points at the node that adds the error, not at everything downstream of it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse._deps import require
from medfuse.calibration._ort import cpu_session, run_all

__all__ = ["LayerError", "layer_errors", "quantized_nodes"]

logger = logging.getLogger(__name__)

_COMPUTE = ("Conv", "Gemm", "MatMul", "Add")
_THROUGH = ("DequantizeLinear", "QuantizeLinear", "Relu", "Clip", "Identity", "MaxPool")


@dataclass(frozen=True)
class LayerError:
    """One quantized node's error against FP32."""

    node: str
    op_type: str
    rel_error: float
    local_error: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return self.__dict__.copy()


def _with_outputs(model: Any, names: Sequence[str]) -> bytes:
    onnx = require("onnx", purpose="sensitivity analysis", extra="quantize")
    have = {o.name for o in model.graph.output}
    for name in names:
        if name not in have:
            model.graph.output.append(
                onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
            )
    data: bytes = model.SerializeToString()
    return data


def layer_errors(
    fp32_path: Path, qdq_path: Path, samples: Mapping[str, NDArray[Any]]
) -> list[LayerError]:
    """Relative and local error of every quantized compute node, most sensitive first.

    Parameters
    ----------
    fp32_path, qdq_path:
        The FP32 model and its Q/DQ version (node names shared).
    samples:
        Input name → stacked sample tensors (a few are enough).
    """
    onnx = require("onnx", purpose="sensitivity analysis", extra="quantize")
    qdq = onnx.load(str(qdq_path))
    fp32 = onnx.load(str(fp32_path))
    producer = {out: n for n in qdq.graph.node for out in n.output}
    fp32_names = {o for n in fp32.graph.node for o in n.output}
    nodes = [
        n
        for n in qdq.graph.node
        if n.op_type in _COMPUTE
        and any(
            producer.get(i) is not None and producer[i].op_type == "DequantizeLinear"
            for i in n.input
        )
        and n.output[0] in fp32_names
    ]
    if not nodes:
        return []
    names = [n.output[0] for n in nodes]
    ref = run_all(cpu_session(_with_outputs(fp32, names)), samples)
    got = run_all(cpu_session(_with_outputs(qdq, names)), samples)
    rel = {
        name: float(np.linalg.norm(got[name] - ref[name]) / (np.linalg.norm(ref[name]) + 1e-12))
        for name in names
    }

    def upstream(tensor: str, depth: int = 0) -> float:
        node = producer.get(tensor)
        if node is None or depth > 16:
            return 0.0
        if node.output[0] in rel and node.op_type in _COMPUTE:
            return rel[node.output[0]]
        if node.op_type in _THROUGH or len(node.input) == 1:
            return upstream(node.input[0], depth + 1) if node.input else 0.0
        return max((upstream(i, depth + 1) for i in node.input), default=0.0)

    out = [
        LayerError(
            node=n.name,
            op_type=n.op_type,
            rel_error=rel[n.output[0]],
            local_error=max(
                0.0, rel[n.output[0]] - max((upstream(i) for i in n.input), default=0.0)
            ),
        )
        for n in nodes
    ]
    out.sort(key=lambda e: (-e.local_error, -e.rel_error))
    logger.info("sensitivity: %d quantized node(s) measured", len(out))
    return out


def quantized_nodes(qdq_path: Path) -> list[tuple[str, str]]:
    """(name, op type) of every compute node fed by a DequantizeLinear, in graph order."""
    onnx = require("onnx", purpose="sensitivity analysis", extra="quantize")
    model = onnx.load(str(qdq_path))
    producer = {out: n.op_type for n in model.graph.node for out in n.output}
    return [
        (n.name, n.op_type)
        for n in model.graph.node
        if n.op_type in _COMPUTE and any(producer.get(i) == "DequantizeLinear" for i in n.input)
    ]
