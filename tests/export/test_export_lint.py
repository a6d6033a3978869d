"""The TensorRT lint flags what TensorRT's ONNX parser rejects or narrows — and nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from medfuse.export import lint_tensorrt  # noqa: E402


def _bad_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    idx = helper.make_tensor_value_info("idx", TensorProto.INT64, None)
    big = numpy_helper.from_array(np.array([3, 2**40], dtype=np.int64), name="big_offsets")
    nodes = [
        helper.make_node("NonZero", ["x"], ["idx"], name="nz"),
        helper.make_node("Cast", ["big_offsets"], ["big_f"], to=TensorProto.FLOAT, name="cast_big"),
        helper.make_node("Add", ["x", "big_f"], ["sum"], name="add"),
        helper.make_node("FrobnicateOp", ["sum"], ["y"], name="made_up", domain="com.example"),
        helper.make_node("Unique", ["x"], ["u"], name="uniq"),
    ]
    graph = helper.make_graph(nodes, "bad", [x], [y, idx], initializer=[big])
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)]
    )


def _codes(report) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in report.findings:
        out.setdefault(f.code, set()).add(f.op_type or f.node)
    return out


def test_flags_nonzero_int64_custom_and_unsupported_ops() -> None:
    report = lint_tensorrt(_bad_model())
    codes = _codes(report)
    assert not report.ok
    assert "NonZero" in codes["data-dependent-shape"] and "Unique" in codes["data-dependent-shape"]
    assert codes["custom-op"] == {"FrobnicateOp"}
    assert codes["unsupported-op"] == {"Unique"}
    assert "int64-narrowing" in codes
    narrowing = next(f for f in report.findings if f.code == "int64-narrowing")
    assert "big_offsets" in narrowing.message and str(2**40) in narrowing.message
    assert report.op_counts["NonZero"] == 1 and report.op_counts["com.example::FrobnicateOp"] == 1
    # errors sort first
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)


def test_report_is_json_ready(tmp_path: Path) -> None:
    import json

    path = tmp_path / "bad.onnx"
    onnx.save(_bad_model(), str(path))
    doc = json.loads(json.dumps(lint_tensorrt(path).to_dict()))
    assert doc["ok"] is False and doc["errors"] >= 2 and doc["opset"] == 18


def test_clean_graph_and_slice_sentinel() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inits = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([np.iinfo(np.int64).max], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["s"], name="slice"),
        helper.make_node("Relu", ["s"], ["y"], name="relu"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "ok", [x], [y], initializer=inits),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    report = lint_tensorrt(model)
    assert report.ok and not report.warnings
    assert [f.code for f in report.findings] == ["int64-sentinel"]


def test_topk_with_constant_k_is_not_data_dependent() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    v = helper.make_tensor_value_info("v", TensorProto.FLOAT, None)
    i = helper.make_tensor_value_info("i", TensorProto.INT64, None)
    k = numpy_helper.from_array(np.array([3], dtype=np.int64), "k")
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk")]
    model = helper.make_model(
        helper.make_graph(nodes, "topk", [x], [v, i], initializer=[k]),
        opset_imports=[helper.make_opsetid("", 18)],
    )
    assert not lint_tensorrt(model).findings


def test_old_opset_is_an_error() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    model = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "g",
            [x],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        ),
        opset_imports=[helper.make_opsetid("", 7)],
    )
    report = lint_tensorrt(model)
    assert [f.code for f in report.errors] == ["opset"]
