"""Check a Q/DQ ONNX graph against the rules TensorRT imposes on explicit INT8.

Rules (TensorRT's ``IQuantizeLayer`` contract and its Q/DQ placement guidance):

- ``opset``: the default-domain opset is at least 13 (per-channel ``axis``).
- ``zero_point``: every zero point is a constant of zeros (symmetric only).
- ``scale``: every scale is a constant with strictly positive values.
- ``per_channel_activation``: per-channel scales only on weights (constants), never activations.
- ``conv_weight_axis``: a per-channel Conv weight is quantized along axis 0 (output channels).
- ``dq_input_type``: every DequantizeLinear input is a type TensorRT's parser dequantizes
  (INT8 / FP8 / FP4 / INT4 — onnx-tensorrt's operator matrix): no INT32 bias (biases stay
  float), no UINT8 activation.
- ``unquantized_input``: both data inputs of Conv / Gemm / MatMul come from DequantizeLinear.
- ``residual_add``: both inputs of a residual Add (two same-shaped activations, one fed by a
  Conv) come from DequantizeLinear, so TensorRT fuses the Add into the convolution.

Nodes deliberately kept in floating point (``excluded``) are exempt from the last three.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medfuse._deps import require
from medfuse.errors import CalibrationError

__all__ = ["QdqReport", "QdqViolation", "check_qdq"]

logger = logging.getLogger(__name__)

_WEIGHTED = ("Conv", "Gemm", "MatMul")
_PASS_THROUGH = (
    "Relu",
    "BatchNormalization",
    "Identity",
    "Clip",
    "QuantizeLinear",
    "DequantizeLinear",
    "LeakyRelu",
    "MaxPool",
)


@dataclass(frozen=True)
class QdqViolation:
    """One broken rule: the node, the rule's name, and what was found."""

    node: str
    rule: str
    detail: str


@dataclass(frozen=True)
class QdqReport:
    """Result of :func:`check_qdq`."""

    violations: tuple[QdqViolation, ...]
    opset: int
    quantize_nodes: int
    dequantize_nodes: int
    excluded: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Whether no rule is broken."""
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "ok": self.ok,
            "opset": self.opset,
            "quantize_nodes": self.quantize_nodes,
            "dequantize_nodes": self.dequantize_nodes,
            "excluded": list(self.excluded),
            "violations": [v.__dict__ for v in self.violations],
        }

    def raise_for_violations(self) -> None:
        """Raise :class:`CalibrationError` listing the violations, if any."""
        if self.violations:
            shown = "; ".join(f"{v.node}: {v.rule} ({v.detail})" for v in self.violations[:10])
            more = len(self.violations) - 10
            raise CalibrationError(
                f"the Q/DQ graph breaks {len(self.violations)} TensorRT rule(s): {shown}"
                + (f"; and {more} more" if more > 0 else "")
            )


def _load(model: Any) -> Any:
    onnx = require("onnx", purpose="checking Q/DQ graphs", extra="quantize")
    if isinstance(model, str | Path):
        return onnx.load(str(model))
    return model


def check_qdq(model: Any, *, excluded: Iterable[str] = ()) -> QdqReport:
    """Check a Q/DQ model against TensorRT's explicit-quantization rules.

    Parameters
    ----------
    model:
        A path to an ONNX file or an ``onnx.ModelProto``.
    excluded:
        Node names deliberately left in floating point (exempt from placement rules).

    Returns
    -------
    QdqReport
        Every violation with the node name and the rule broken.
    """
    onnx = require("onnx", purpose="checking Q/DQ graphs", extra="quantize")
    numpy_helper = onnx.numpy_helper
    proto = _load(model)
    graph = proto.graph
    skip = frozenset(excluded)
    consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            attr = node.attribute[0]
            if attr.name == "value":
                consts[node.output[0]] = numpy_helper.to_array(attr.t)
    for node in graph.node:  # Constant -> Cast -> Q/DQ is a build-time constant too
        if node.op_type == "Cast" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
    producer = {out: n for n in graph.node for out in n.output}
    shapes = _shapes(proto)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    out: list[QdqViolation] = []
    if opset < 13:
        out.append(QdqViolation("<model>", "opset", f"opset {opset} < 13"))

    def bad(node: Any, rule: str, detail: str) -> None:
        out.append(QdqViolation(node.name or f"<{node.op_type}>", rule, detail))

    nq = nd = 0
    for node in graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        nq += node.op_type == "QuantizeLinear"
        nd += node.op_type == "DequantizeLinear"
        scale = consts.get(node.input[1])
        if scale is None:
            bad(node, "scale", "scale is not a build-time constant")
        elif not np.all(np.asarray(scale, dtype=np.float64) > 0):
            bad(node, "scale", f"non-positive scale (min {float(np.min(scale)):g})")
        if len(node.input) > 2 and node.input[2]:
            zp = consts.get(node.input[2])
            if zp is None:
                bad(node, "zero_point", "zero point is not a build-time constant")
            elif np.any(np.asarray(zp) != 0):
                bad(
                    node,
                    "zero_point",
                    f"nonzero zero point ({np.asarray(zp).ravel()[:4].tolist()})",
                )
        if scale is not None and np.asarray(scale).size > 1 and node.input[0] not in consts:
            bad(node, "per_channel_activation", "per-channel scale on an activation")
    for node in graph.node:
        if node.name in skip:
            continue
        if node.op_type in _WEIGHTED:
            for idx in range(min(2, len(node.input))):
                src = producer.get(node.input[idx])
                if src is None or src.op_type != "DequantizeLinear":
                    bad(node, "unquantized_input", f"input {idx} has no Q/DQ")
                    continue
                scale = consts.get(src.input[1])
                if (
                    node.op_type == "Conv"
                    and idx == 1
                    and scale is not None
                    and np.asarray(scale).size > 1
                ):
                    axis = next((a.i for a in src.attribute if a.name == "axis"), 1)
                    if axis != 0:
                        bad(
                            src,
                            "conv_weight_axis",
                            f"per-channel axis {axis} on Conv weight, need 0",
                        )
        elif node.op_type == "Add" and _is_residual(node, consts, producer, shapes):
            for idx, name in enumerate(node.input):
                src = producer.get(name)
                if src is None or src.op_type != "DequantizeLinear":
                    bad(node, "residual_add", f"residual input {idx} has no Q/DQ")
    from medfuse.export.lint import dequantize_input_problems

    for node_name, value, type_name in dequantize_input_problems(proto):
        out.append(
            QdqViolation(
                node_name,
                "dq_input_type",
                f"DequantizeLinear of a {type_name} input ({value}); TensorRT dequantizes "
                "INT8 / FP8 / FP4 / INT4 only",
            )
        )
    logger.debug("check_qdq: %d violation(s), %d Q, %d DQ", len(out), nq, nd)
    return QdqReport(tuple(out), opset, nq, nd, tuple(sorted(skip)))


def _traces_to_conv(name: str, producer: dict[str, Any], depth: int = 0) -> bool:
    node = producer.get(name)
    if node is None or depth > 8:
        return False
    if node.op_type == "Conv":
        return True
    if node.op_type in _PASS_THROUGH:
        return _traces_to_conv(node.input[0], producer, depth + 1)
    if node.op_type == "Add":  # a chain of residual blocks
        return any(_traces_to_conv(i, producer, depth + 1) for i in node.input)
    return False


def _shapes(proto: Any) -> dict[str, tuple[Any, ...]]:
    """Tensor name → shape (ints and symbolic names) from ONNX shape inference, where known."""
    onnx = require("onnx", purpose="checking Q/DQ graphs", extra="quantize")
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # shapes are a refinement; without them the structural rule applies
        return {}
    g = inferred.graph
    out: dict[str, tuple[Any, ...]] = {}
    for vi in (*g.value_info, *g.input, *g.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = tuple(d.dim_param or d.dim_value or None for d in t.shape.dim)
    return out


def _is_residual(
    node: Any,
    consts: dict[str, Any],
    producer: dict[str, Any],
    shapes: dict[str, tuple[Any, ...]] | None = None,
) -> bool:
    """An Add of two same-shaped activations at least one of which comes from a Conv.

    A broadcasting Add (e.g. an attention mask added to scores) is not residual; shapes are
    compared only where shape inference knows both.
    """
    if len(node.input) != 2 or any(i in consts for i in node.input):
        return False
    if shapes:
        a, b = (shapes.get(i) for i in node.input)
        if (
            a is not None
            and b is not None
            and (
                len(a) != len(b)
                or any(
                    x is not None and y is not None and x != y for x, y in zip(a, b, strict=True)
                )
            )
        ):
            return False
    return any(_traces_to_conv(i, producer) for i in node.input)


def non_residual_adds(model: Any) -> list[str]:
    """Names of the Add nodes that are not residual Adds (see :func:`check_qdq`'s rule).

    Bias adds (a constant input), broadcasting adds such as an attention mask's ``scores +
    bias``, and sums of activations none of which comes from a Conv: TensorRT fuses none of
    them into a convolution, so Q/DQ on their inputs buys no speed and costs accuracy (an
    attention mask's -1e4 would set the scale and flatten the scores). Kept in float.
    """
    proto = _load(model)
    consts = {i.name for i in proto.graph.initializer}
    consts |= {n.output[0] for n in proto.graph.node if n.op_type == "Constant"}
    producer = {out: n for n in proto.graph.node for out in n.output}
    shapes = _shapes(proto)
    return [
        n.name
        for n in proto.graph.node
        if n.op_type == "Add" and not _is_residual(n, dict.fromkeys(consts), producer, shapes)
    ]
