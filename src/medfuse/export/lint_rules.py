"""The lint's per-node restrictions and graph checks (used by :func:`medfuse.export.lint_tensorrt`).

- :func:`restriction_findings`: every restriction of :data:`medfuse.export._trt_ops.RESTRICTIONS`
  checked on a node (pooling rank and dilations, MaxPool's Indices, Resize modes and
  antialiasing, TopK's sorted / K, Dropout's training flag, CumSum's axis, LayerNormalization's
  extra outputs, Squeeze / Unsqueeze axes, GridSample's rank, DequantizeLinear's input type is
  :func:`medfuse.export.lint.dequantize_input_problems`);
- :func:`infer`: ONNX shape inference, once in strict mode (its error is a finding: a MatMul
  whose inner dimensions differ, a wrong input type) and once lenient for element types and
  ranks the other checks use;
- :func:`unused_input_findings`, :func:`dead_node_findings`: graph inputs no node reads, nodes
  none of whose outputs reaches a graph output (what ``polygraphy check lint`` reports too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medfuse._deps import require
from medfuse.export import _trt_ops as table
from medfuse.export.lint_finding import LintFinding

__all__ = [
    "Inferred",
    "constant_values",
    "dead_node_findings",
    "infer",
    "restriction_findings",
    "shape_inference_finding",
    "unused_input_findings",
]

TOPK_MAX_K = 3840
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Inferred:
    """What shape inference says: element types and ranks by value name, the strict error."""

    types: Mapping[str, int]
    ranks: Mapping[str, int]
    strict_error: str | None


def _value_infos(graph: Any) -> Iterator[Any]:
    yield from (*graph.input, *graph.output, *graph.value_info)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _value_infos(attr.g)
            for sub in attr.graphs:
                yield from _value_infos(sub)


def infer(model: Any) -> Inferred:
    """Run ONNX shape inference strictly (its error kept) and leniently (types and ranks)."""
    onnx = require("onnx", purpose="the TensorRT lint")
    strict_error = None
    try:
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:
        text = _ANSI.sub("", str(exc)).strip()
        strict_error = " ".join(text.split())[:600] or type(exc).__name__
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    types: dict[str, int] = {}
    ranks: dict[str, int] = {}
    for vi in _value_infos(inferred.graph):
        t = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if t is None:
            continue
        if t.elem_type:
            types[vi.name] = t.elem_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    for name, tensor in _constants(model.graph):
        types[name] = tensor.data_type
        ranks[name] = len(tensor.dims)
    return Inferred(types, ranks, strict_error)


def _constants(graph: Any) -> Iterator[tuple[str, Any]]:
    """(name, TensorProto) of the initializers and Constant values, subgraphs included."""
    for init in graph.initializer:
        yield init.name, init
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t") and node.output:
                    yield node.output[0], attr.t
        for attr in node.attribute:
            subs = [attr.g] if attr.HasField("g") else []
            for sub in [*subs, *attr.graphs]:
                yield from _constants(sub)


def _ints(node: Any, name: str) -> list[int] | None:
    for a in node.attribute:
        if a.name == name:
            return list(a.ints)
    return None


def _int(node: Any, name: str, default: int) -> int:
    return next((int(a.i) for a in node.attribute if a.name == name), default)


def _restricted(node: Any, detail: str = "") -> LintFinding:
    rule = table.RESTRICTIONS[node.op_type]
    return LintFinding(
        "error",
        "op-restriction",
        f"{node.op_type}: {rule}" + (f" (here: {detail})" if detail else ""),
        node.op_type,
        node.name,
    )


def _input(node: Any, i: int) -> str:
    return node.input[i] if len(node.input) > i else ""


def restriction_findings(
    node: Any, values: Mapping[str, Any], inferred: Inferred, constants: set[str]
) -> Iterator[LintFinding]:
    """The findings of ``node`` against its entry in ``RESTRICTIONS`` (default domain only).

    ``values``: small constants by name (:func:`constant_values`); ``constants``: the names of
    every build-time constant."""
    op = node.op_type
    if op in ("AveragePool", "MaxPool"):
        kernel = _ints(node, "kernel_shape")
        if kernel is not None and len(kernel) not in (2, 3):
            yield _restricted(node, f"{len(kernel)}-D kernel")
        dil = _ints(node, "dilations")
        if dil and any(d != 1 for d in dil):
            yield _restricted(node, f"dilations {dil}")
        if op == "MaxPool" and len([o for o in node.output if o]) > 1:
            yield _restricted(node, "the Indices output is used")
    elif op == "Resize":
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
        if mode not in ("nearest", "linear"):
            yield _restricted(node, f"mode {mode}")
        if _int(node, "antialias", 0):
            yield _restricted(node, "antialias=1")
    elif op == "TopK":
        if _int(node, "sorted", 1) != 1:
            yield _restricted(node, "sorted=0")
        k = values.get(_input(node, 1))
        if k is not None and np.asarray(k).size and int(np.asarray(k).ravel()[0]) >= TOPK_MAX_K:
            yield _restricted(node, f"K={int(np.asarray(k).ravel()[0])}")
    elif op == "Dropout":
        flag = _input(node, 2)
        if flag and (flag not in values or bool(np.asarray(values[flag]).ravel()[0])):
            yield _restricted(node, "training_mode is not a constant False")
    elif op == "CumSum":
        if _input(node, 1) not in constants:
            yield _restricted(node, "axis is computed at run time")
    elif op == "LayerNormalization":
        if any(o for o in node.output[1:]):
            yield _restricted(node, "Mean / InvStdDev outputs are used")
    elif op in ("Squeeze", "Unsqueeze"):
        axes = _input(node, 1)
        if axes and axes not in constants:
            finding = _restricted(node, "axes come from a computed tensor")
            yield LintFinding("warning", finding.code, finding.message, op, node.name)
    elif op == "GridSample":
        rank = inferred.ranks.get(_input(node, 0))
        if rank is not None and rank != 4:
            yield _restricted(node, f"{rank}-D input")


def shape_inference_finding(inferred: Inferred) -> Iterator[LintFinding]:
    """The strict shape-inference error as a finding (none when inference passed)."""
    if inferred.strict_error:
        yield LintFinding(
            "error",
            "shape-inference",
            f"ONNX shape inference (strict) failed: {inferred.strict_error}; TensorRT's parser "
            "runs the same checks — fix the graph (e.g. mismatched MatMul dimensions)",
        )


def _used_names(graph: Any) -> set[str]:
    """Every value name any node reads, subgraphs included (their outer-scope reads too)."""
    used: set[str] = set()
    for node in graph.node:
        used.update(i for i in node.input if i)
        for attr in node.attribute:
            subs = [attr.g] if attr.HasField("g") else []
            for sub in [*subs, *attr.graphs]:
                used |= _used_names(sub)
                used.update(o.name for o in sub.output)
    return used


def unused_input_findings(graph: Any) -> Iterator[LintFinding]:
    """Graph inputs that no node reads and that are not passed through as outputs."""
    inits = {i.name for i in graph.initializer}
    used = _used_names(graph) | {o.name for o in graph.output}
    for value in graph.input:
        if value.name not in inits and value.name not in used:
            yield LintFinding(
                "warning",
                "unused-input",
                f"graph input {value.name!r} is read by no node; TensorRT still expects it to "
                "be bound — remove it from the model or use it",
            )


def _reads(node: Any) -> set[str]:
    names = {i for i in node.input if i}
    for attr in node.attribute:
        subs = [attr.g] if attr.HasField("g") else []
        for sub in [*subs, *attr.graphs]:
            names |= _used_names(sub)
    return names


def dead_node_findings(graph: Any) -> Iterator[LintFinding]:
    """Nodes of the main graph none of whose outputs reaches a graph output."""
    producer = {o: n for n in graph.node for o in n.output if o}
    live: set[int] = set()
    stack = [o.name for o in graph.output]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is None or id(node) in live:
            continue
        live.add(id(node))
        stack.extend(_reads(node))
    dead = [n for n in graph.node if id(n) not in live]
    for node in dead:
        yield LintFinding(
            "warning",
            "dead-node",
            f"{node.op_type} node {node.name or '(unnamed)'} reaches no graph output "
            f"({len(dead)} such node(s)); TensorRT drops it — remove it, or output what it "
            "computes",
            node.op_type,
            node.name,
        )


def constant_values(tensors: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """Value name → numpy array of the small (≤ 64 elements) constants, for attribute-like inputs."""
    onnx = require("onnx", purpose="the TensorRT lint")
    out: dict[str, Any] = {}
    for _owner, value, tensor in tensors:
        n = int(np.prod(tensor.dims)) if tensor.dims else 1
        if n <= 64 and not tensor.external_data:
            out[value] = onnx.numpy_helper.to_array(tensor)
    return out
