"""check_qdq on hand-built Q/DQ graphs: one good, each bad one breaking one rule."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from medfuse.calibration import check_qdq


def _model(
    *,
    zp: int = 0,
    act_scale: np.ndarray | None = None,
    quantize_x: bool = True,
    weight_axis: int = 0,
    residual_qdq: bool = True,
    opset: int = 17,
) -> onnx.ModelProto:
    """x → [Q/DQ] → Conv(DQ(w)) → y ; out = Add(DQ(Q(y)), DQ(Q(x)))."""
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 127, (4, 4, 3, 3)).astype(np.int8)
    inits = [
        numpy_helper.from_array(w, "w_q"),
        numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_s"),
        numpy_helper.from_array(np.zeros(4, np.int8), "w_z"),
        numpy_helper.from_array(
            act_scale if act_scale is not None else np.array(0.05, np.float32), "a_s"
        ),
        numpy_helper.from_array(
            np.array(zp, np.int8) if act_scale is None else np.zeros(act_scale.shape, np.int8),
            "a_z",
        ),
    ]
    n = helper.make_node
    nodes = [n("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"], name="dq_w", axis=weight_axis)]
    conv_in = "x"
    if quantize_x:
        nodes += [
            n("QuantizeLinear", ["x", "a_s", "a_z"], ["xq"], name="q_x"),
            n("DequantizeLinear", ["xq", "a_s", "a_z"], ["xd"], name="dq_x"),
        ]
        conv_in = "xd"
    nodes.append(n("Conv", [conv_in, "w"], ["y"], name="conv", pads=[1, 1, 1, 1]))
    if residual_qdq:
        nodes += [
            n("QuantizeLinear", ["y", "a_s", "a_z"], ["yq"], name="q_y"),
            n("DequantizeLinear", ["yq", "a_s", "a_z"], ["yd"], name="dq_y"),
            n("Add", ["yd", conv_in], ["out"], name="res_add"),
        ]
    else:
        nodes.append(n("Add", ["y", "x"], ["out"], name="res_add"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _rules(model: onnx.ModelProto) -> set[tuple[str, str]]:
    return {(v.node, v.rule) for v in check_qdq(model).violations}


def test_good_model_has_no_violations() -> None:
    report = check_qdq(_model())
    assert report.ok and report.quantize_nodes == 2 and report.dequantize_nodes == 3


def test_nonzero_zero_point() -> None:
    assert ("q_x", "zero_point") in _rules(_model(zp=3))


def test_per_channel_activation() -> None:
    rules = _rules(_model(act_scale=np.full(4, 0.05, np.float32)))
    assert ("q_x", "per_channel_activation") in rules


def test_missing_qdq_on_conv_input() -> None:
    assert ("conv", "unquantized_input") in _rules(_model(quantize_x=False))


def test_conv_weight_axis_not_zero() -> None:
    assert ("dq_w", "conv_weight_axis") in _rules(_model(weight_axis=1))


def test_missing_qdq_on_residual_add() -> None:
    assert ("res_add", "residual_add") in _rules(_model(residual_qdq=False))


def test_old_opset_and_excluded_nodes() -> None:
    assert ("<model>", "opset") in _rules(_model(opset=12))
    assert check_qdq(_model(quantize_x=False, residual_qdq=False), excluded=["conv", "res_add"]).ok
