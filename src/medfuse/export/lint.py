"""TensorRT-compatibility lint of an ONNX graph: problems found before a device ever parses it.

:func:`lint_tensorrt` walks the graph (and its subgraphs and local functions) and reports,
without raising:

- operators TensorRT's ONNX parser does not import (table in :mod:`medfuse.export._trt_ops`),
  operators from custom domains (they need a TensorRT plugin), operators it gained late;
- INT64 constants whose values fall outside int32 (TensorRT narrows INT64 to INT32 and clamps);
- operators with data-dependent output shapes (NonZero, Unique, …);
- opsets outside the parser's range, and DOUBLE tensors (narrowed to FLOAT);
- DequantizeLinear on an input type TensorRT does not dequantize (INT32 biases, UINT8, …);
- every restriction of the operator table (pool rank and dilations, 5-D GridSample, …), ONNX
  shape inference's errors in strict mode, unused graph inputs and dead nodes
  (:mod:`medfuse.export.lint_rules`).

The result is a :class:`LintReport`; ``export_bundle`` writes it to
``reports/export_lint.json`` and the CLI shows it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medfuse._deps import require
from medfuse.export import _trt_ops as table
from medfuse.export.lint_finding import LintFinding
from medfuse.export.lint_rules import (
    Inferred,
    constant_values,
    dead_node_findings,
    infer,
    restriction_findings,
    shape_inference_finding,
    unused_input_findings,
)

__all__ = ["LintFinding", "LintReport", "dequantize_input_problems", "lint_tensorrt"]

_INT32_MIN, _INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
_INT64_SENTINELS = {int(np.iinfo(np.int64).max), int(np.iinfo(np.int64).min)}
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class LintReport:
    """All findings of a lint run, plus the graph's operator census."""

    findings: tuple[LintFinding, ...]
    op_counts: dict[str, int] = field(default_factory=dict)
    opset: int | None = None
    table: str = table.SOURCE

    @property
    def errors(self) -> tuple[LintFinding, ...]:
        """Findings that would stop TensorRT from parsing or building the graph."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[LintFinding, ...]:
        """Findings that build but cost accuracy, speed or portability."""
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        """True when there is no error-level finding."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "opset": self.opset,
            "table": self.table,
            "op_counts": dict(sorted(self.op_counts.items())),
            "findings": [f.to_dict() for f in self.findings],
        }


def _walk_nodes(graph: Any) -> Iterator[Any]:
    """Nodes of ``graph`` and of every subgraph (If/Loop/Scan bodies), depth first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.HasField("g"):
                yield from _walk_nodes(attr.g)
            for sub in attr.graphs:
                yield from _walk_nodes(sub)


def _tensors(graph: Any) -> Iterator[tuple[str, str, Any]]:
    """(owner node, value name, TensorProto) of initializers and Constant values, subgraphs too."""
    for init in graph.initializer:
        yield "", init.name, init
    for node in _walk_nodes(graph):
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    yield node.name, node.output[0], attr.t
        for attr in node.attribute:
            if attr.HasField("g"):
                for init in attr.g.initializer:
                    yield node.name, init.name, init


def _check_ops(
    node: Any, local_functions: set[tuple[str, str]], constants: set[str]
) -> Iterator[LintFinding]:
    op, name, domain = node.op_type, node.name, node.domain
    if domain not in _DEFAULT_DOMAINS:
        if (domain, op) in local_functions:
            return
        yield LintFinding(
            "error",
            "custom-op",
            f"operator {domain}::{op} is not a standard ONNX operator; TensorRT needs a plugin "
            "registered under that name, or re-export without the custom op",
            op,
            name,
        )
        return
    if op in table.UNSUPPORTED or op not in table.SUPPORTED:
        known = "marked unsupported" if op in table.UNSUPPORTED else "not listed"
        yield LintFinding(
            "error",
            "unsupported-op",
            f"operator {op} is {known} in TensorRT's ONNX parser ({table.SOURCE}); rewrite the "
            "model so the exporter emits supported operators",
            op,
            name,
        )
    if op in table.DATA_DEPENDENT:
        # TopK's K (input 1) and Loop's trip count (input 0) fix the output size when constant
        size_input = {"TopK": 1, "Loop": 0}.get(op)
        fixed = (
            size_input is not None
            and len(node.input) > size_input
            and node.input[size_input] in constants
        )
        if not fixed:
            yield LintFinding(
                "warning",
                "data-dependent-shape",
                f"{op}: {table.DATA_DEPENDENT[op]}; TensorRT needs an output allocator, no CUDA "
                "graph capture, no DLA — prefer fixed-size outputs (masks, padded top-k)",
                op,
                name,
            )
    if op in table.MIN_TENSORRT:
        yield LintFinding("info", "late-op", f"{op}: {table.MIN_TENSORRT[op]}", op, name)


def _check_int64(owner: str, value: str, tensor: Any, users: list[str]) -> Iterator[LintFinding]:
    onnx = require("onnx", purpose="the TensorRT lint")
    if tensor.data_type == onnx.TensorProto.DOUBLE:
        yield LintFinding(
            "warning",
            "double",
            f"DOUBLE constant {value!r}: TensorRT narrows DOUBLE to FLOAT",
            "",
            owner,
        )
        return
    if tensor.data_type != onnx.TensorProto.INT64:
        return
    values = onnx.numpy_helper.to_array(tensor).reshape(-1)
    if values.size == 0:
        return
    lo, hi = int(values.min()), int(values.max())
    if lo >= _INT32_MIN and hi <= _INT32_MAX:
        return
    outside = {int(v) for v in values if not _INT32_MIN <= int(v) <= _INT32_MAX}
    if outside <= _INT64_SENTINELS and users and all(u == "Slice" for u in users):
        yield LintFinding(
            "info",
            "int64-sentinel",
            f"INT64 constant {value!r} holds an 'until the end' slice bound; TensorRT "
            "clamps it to int32, which keeps the meaning",
            "Slice",
            owner,
        )
        return
    yield LintFinding(
        "warning",
        "int64-narrowing",
        f"INT64 constant {value!r} has values in [{lo}, {hi}], outside int32 "
        f"[{_INT32_MIN}, {_INT32_MAX}]; TensorRT narrows INT64 to INT32 and clamps them",
        ",".join(sorted(set(users))),
        owner,
    )


def dequantize_input_problems(
    model: Any, inferred: Inferred | None = None
) -> list[tuple[str, str, str]]:
    """``(node, input, type)`` of each DequantizeLinear whose input TensorRT's parser does not
    dequantize (:data:`~medfuse.export._trt_ops.DEQUANTIZE_INPUT_TYPES`): an INT32 bias, a UINT8
    activation. A DequantizeLinear whose input type is unknown is not reported."""
    onnx = require("onnx", purpose="the TensorRT lint")
    if isinstance(model, str | Path):
        model = onnx.load(str(model), load_external_data=False)
    types = (inferred or infer(model)).types
    out = []
    for node in _walk_nodes(model.graph):
        if node.op_type != "DequantizeLinear" or node.domain not in _DEFAULT_DOMAINS:
            continue
        t = types.get(node.input[0])
        if t is None:
            continue
        name = onnx.TensorProto.DataType.Name(t)
        if name not in table.DEQUANTIZE_INPUT_TYPES:
            out.append((node.name or "<DequantizeLinear>", node.input[0], name))
    return out


def _dequantize_findings(model: Any, inferred: Inferred) -> Iterator[LintFinding]:
    problems = dequantize_input_problems(model, inferred)
    by_type = Counter(t for _, _, t in problems)
    for node, value, t in problems:
        hint = (
            "a quantized bias: quantize with biases in float (ONNX Runtime: "
            "extra_options QuantizeBias=False)"
            if t == "INT32"
            else "TensorRT dequantizes INT8 / FP8 / FP4 / INT4 only"
        )
        yield LintFinding(
            "error",
            "dq-input-type",
            f"DequantizeLinear of {t} input {value!r} ({by_type[t]} such node(s)): {hint}",
            "DequantizeLinear",
            node,
        )


def _merge_late_ops(findings: list[LintFinding]) -> list[LintFinding]:
    """One ``late-op`` note per operator type (with its node count), not one per node."""
    counts = Counter(f.op_type for f in findings if f.code == "late-op")
    merged: list[LintFinding] = []
    seen: set[str] = set()
    for f in findings:
        if f.code != "late-op":
            merged.append(f)
        elif f.op_type not in seen:
            seen.add(f.op_type)
            merged.append(
                LintFinding(
                    f.severity, f.code, f"{f.message} ({counts[f.op_type]} node(s))", f.op_type
                )
            )
    return merged


def lint_tensorrt(model: Any) -> LintReport:
    """Check an ONNX model against what TensorRT's ONNX parser accepts.

    Parameters
    ----------
    model:
        An ``onnx.ModelProto`` or the path of an ``.onnx`` file.

    Returns
    -------
    LintReport
        Findings with severities ``error`` (TensorRT would reject the graph), ``warning``
        (builds, but narrows, loses CUDA graphs or DLA), ``info``; never raises for a bad graph.
    """
    onnx = require("onnx", purpose="the TensorRT lint")
    if isinstance(model, str | Path):
        model = onnx.load(str(model), load_external_data=False)
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), None)
    findings: list[LintFinding] = []
    if opset is not None and not table.OPSET_RANGE[0] <= opset <= table.OPSET_RANGE[1]:
        findings.append(
            LintFinding(
                "error" if opset < table.OPSET_RANGE[0] else "warning",
                "opset",
                f"opset {opset} is outside TensorRT's parser range {list(table.OPSET_RANGE)}; "
                "re-export with opset 17 or 18",
            )
        )
    local_functions = {(f.domain, f.name) for f in model.functions}
    nodes = list(_walk_nodes(graph))
    for fn in model.functions:
        nodes.extend(fn.node)
    constants = {init.name for init in graph.initializer}
    constants |= {n.output[0] for n in nodes if n.op_type == "Constant" and n.output}
    inferred = infer(model)
    findings.extend(shape_inference_finding(inferred))
    values = constant_values(_tensors(graph))
    consumers: dict[str, list[str]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
        findings.extend(_check_ops(node, local_functions, constants))
        if node.domain in _DEFAULT_DOMAINS and node.op_type in table.RESTRICTIONS:
            findings.extend(restriction_findings(node, values, inferred, constants))
    for owner, value, tensor in _tensors(graph):
        findings.extend(_check_int64(owner, value, tensor, consumers.get(value, [])))
    if any(n.op_type == "DequantizeLinear" for n in nodes):
        findings.extend(_dequantize_findings(model, inferred))
    findings.extend(unused_input_findings(graph))
    findings.extend(dead_node_findings(graph))
    for value in list(graph.input) + list(graph.output):
        if value.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE:
            findings.append(
                LintFinding("warning", "double", f"graph input/output {value.name!r} is DOUBLE")
            )
    counts = Counter(
        n.op_type if n.domain in _DEFAULT_DOMAINS else f"{n.domain}::{n.op_type}" for n in nodes
    )
    findings = _merge_late_ops(findings)
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: order[f.severity])
    return LintReport(findings=tuple(findings), op_counts=dict(counts), opset=opset)
