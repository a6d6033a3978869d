"""The lint checks every restriction of its own table, strict shape inference, unused inputs and
dead nodes — each on a small graph built with onnx.helper that breaks exactly one rule."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from medfuse.export import lint_tensorrt  # noqa: E402

F = TensorProto.FLOAT


def _model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[tuple[str, Sequence[int]]],
    outputs: Sequence[str],
    inits: Sequence[onnx.TensorProto] = (),
) -> onnx.ModelProto:
    graph = helper.make_graph(
        list(nodes),
        "g",
        [helper.make_tensor_value_info(n, F, list(s)) for n, s in inputs],
        [helper.make_tensor_value_info(n, F, None) for n in outputs],
        list(inits),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _found(model: onnx.ModelProto, code: str) -> list[tuple[str, str, str]]:
    return [
        (f.severity, f.node, f.message) for f in lint_tensorrt(model).findings if f.code == code
    ]


def _pool(op: str, kernel: list[int], rank: int, **attrs: object) -> onnx.ModelProto:
    shape = [1, 2, *([8] * rank)]
    node = helper.make_node(op, ["x"], ["y"], name="pool", kernel_shape=kernel, **attrs)
    return _model([node], [("x", shape)], ["y"])


def test_pooling_rank_and_dilations() -> None:
    assert not _found(_pool("AveragePool", [2, 2], 2), "op-restriction")
    assert not _found(_pool("MaxPool", [2, 2, 2], 3), "op-restriction")
    one_d = _found(_pool("MaxPool", [2], 1), "op-restriction")
    assert one_d and one_d[0][:2] == ("error", "pool") and "1-D kernel" in one_d[0][2]
    dilated = _found(_pool("AveragePool", [2, 2], 2, dilations=[2, 2]), "op-restriction")
    assert dilated and "dilations [2, 2]" in dilated[0][2]
    assert _found(_pool("MaxPool", [2, 2], 2, dilations=[1, 2]), "op-restriction")


def test_gridsample_5d_input() -> None:
    def grid(rank: int) -> onnx.ModelProto:
        spatial = [4] * (rank - 2)
        node = helper.make_node("GridSample", ["x", "g"], ["y"], name="gs")
        return _model([node], [("x", [1, 2, *spatial]), ("g", [1, *spatial, rank - 2])], ["y"])

    assert not _found(grid(4), "op-restriction")
    five = _found(grid(5), "op-restriction")
    assert five and five[0][:2] == ("error", "gs") and "5-D input" in five[0][2]


def test_resize_topk_dropout_cumsum_layernorm_squeeze() -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    resize = helper.make_node(
        "Resize", ["x", "", "scales"], ["y"], name="rs", mode="linear", antialias=1
    )
    assert (
        "antialias"
        in _found(_model([resize], [("x", [1, 1, 4, 4])], ["y"], [scales]), "op-restriction")[0][2]
    )

    k = numpy_helper.from_array(np.array([4000], np.int64), "k")
    topk = helper.make_node("TopK", ["x", "k"], ["v", "i"], name="tk", sorted=0)
    msgs = [
        m for _, _, m in _found(_model([topk], [("x", [1, 5000])], ["v"], [k]), "op-restriction")
    ]
    assert any("sorted=0" in m for m in msgs) and any("K=4000" in m for m in msgs)

    train = numpy_helper.from_array(np.array(True), "train")
    drop = helper.make_node("Dropout", ["x", "", "train"], ["y"], name="do")
    assert _found(_model([drop], [("x", [1, 4])], ["y"], [train]), "op-restriction")
    off = numpy_helper.from_array(np.array(False), "train")
    assert not _found(_model([drop], [("x", [1, 4])], ["y"], [off]), "op-restriction")

    axis_in = helper.make_tensor_value_info("axis", TensorProto.INT64, [])
    cum = helper.make_node("CumSum", ["x", "axis"], ["y"], name="cs")
    m = _model([cum], [("x", [1, 4])], ["y"])
    m.graph.input.append(axis_in)
    assert _found(m, "op-restriction")[0][1] == "cs"

    scale = numpy_helper.from_array(np.ones(4, np.float32), "s")
    ln = helper.make_node("LayerNormalization", ["x", "s"], ["y", "mean"], name="ln")
    assert _found(_model([ln], [("x", [1, 4])], ["y", "mean"], [scale]), "op-restriction")

    shape = helper.make_node("Shape", ["x"], ["shp"], name="shape")
    sl = helper.make_node("Slice", ["shp", "zero", "one"], ["axes"], name="slice")
    sq = helper.make_node("Unsqueeze", ["x", "axes"], ["y"], name="unsq")
    inits = [
        numpy_helper.from_array(np.array([v], np.int64), n) for n, v in (("zero", 0), ("one", 1))
    ]
    found = _found(_model([shape, sl, sq], [("x", [1, 4])], ["y"], inits), "op-restriction")
    assert found and found[0][:2] == ("warning", "unsq")


def test_strict_shape_inference_reports_matmul_mismatch() -> None:
    mm = helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")
    bad = _found(_model([mm], [("a", [2, 3]), ("b", [4, 5])], ["y"]), "shape-inference")
    assert bad and bad[0][0] == "error" and "MatMul" in bad[0][2]
    assert "\x1b" not in bad[0][2]
    assert not _found(_model([mm], [("a", [2, 3]), ("b", [3, 5])], ["y"]), "shape-inference")


def test_unused_input_and_dead_nodes() -> None:
    relu = helper.make_node("Relu", ["x"], ["y"], name="relu")
    dead = helper.make_node("Sigmoid", ["x"], ["s"], name="orphan")
    dead2 = helper.make_node("Neg", ["s"], ["t"], name="orphan2")
    m = _model([relu, dead, dead2], [("x", [1, 4]), ("spare", [1, 4])], ["y"])
    unused = _found(m, "unused-input")
    assert len(unused) == 1 and unused[0][0] == "warning" and "'spare'" in unused[0][2]
    assert sorted(n for _, n, _ in _found(m, "dead-node")) == ["orphan", "orphan2"]
    clean = _model([relu], [("x", [1, 4])], ["y"])
    assert not _found(clean, "unused-input") and not _found(clean, "dead-node")


def test_subgraph_reads_keep_outer_nodes_alive() -> None:
    """A node whose output only an If branch reads is not dead."""
    feed = helper.make_node("Relu", ["x"], ["r"], name="feeds_branch")
    branch = helper.make_graph(
        [helper.make_node("Identity", ["r"], ["out_b"], name="id")],
        "b",
        [],
        [helper.make_tensor_value_info("out_b", F, None)],
    )
    cond = numpy_helper.from_array(np.array(True), "c")
    iff = helper.make_node("If", ["c"], ["y"], name="if", then_branch=branch, else_branch=branch)
    m = _model([feed, iff], [("x", [1, 4])], ["y"], [cond])
    assert not _found(m, "dead-node")
