"""check_qdq on hand-built Q/DQ graphs: one good, each bad one breaking one rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

from medfuse.calibration import QuantizeConfig, check_qdq
from medfuse.calibration.int8 import quantize_int8
from medfuse.calibration.qdq_rules import non_residual_adds
from medfuse.calibration.ranges import CalibrationRanges


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


class _OneBatch:
    """ONNX Runtime's CalibrationDataReader protocol over one batch of feeds."""

    def __init__(self, feeds: dict[str, np.ndarray]) -> None:
        self._feeds: list[dict[str, np.ndarray]] = [feeds]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return self._feeds.pop() if self._feeds else None


def test_only_residual_adds_are_quantized(tmp_path: Path) -> None:
    """A conv residual Add gets Q/DQ; a bias add and a broadcast attention-mask add do not."""
    rng = np.random.default_rng(1)
    n = helper.make_node
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((1, 4, 1, 1)).astype(np.float32), "bias"),
    ]
    nodes = [
        n("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1]),
        n("Add", ["y", "x"], ["r"], name="residual"),  # conv output + skip: residual
        n("Add", ["r", "bias"], ["rb"], name="bias_add"),  # constant input
        n("Add", ["rb", "mask"], ["out"], name="mask_add"),  # activations, no Conv in "mask"
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, 8, 8]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, [None, 1, 1, 8]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4, 8, 8])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert non_residual_adds(model) == ["bias_add", "mask_add"]

    fp32 = tmp_path / "m.onnx"
    onnx.save(model, fp32)
    feeds = {
        "x": rng.standard_normal((2, 4, 8, 8)).astype(np.float32),
        "mask": np.where(rng.random((2, 1, 1, 8)) < 0.5, -1e4, 0.0).astype(np.float32),
    }
    calibrator = create_calibrator(
        fp32, ["Conv", "Add"], augmented_model_path=str(tmp_path / "aug.onnx")
    )
    calibrator.collect_data(_OneBatch(feeds))
    save_tensors_data(calibrator.compute_data(), tmp_path / "ranges.json")
    ranges = CalibrationRanges(tmp_path / "ranges.json", "minmax", "0" * 64, 1, 0, {}, False, 1)
    cfg = QuantizeConfig(calibrate_method="minmax", op_types_to_quantize=("Conv", "Add"))
    out = quantize_int8(fp32, tmp_path / "q.onnx", ranges, cfg)
    q = onnx.load(out)
    producer = {o: node for node in q.graph.node for o in node.output}
    adds = {node.name: node for node in q.graph.node if node.op_type == "Add"}

    def dq_fed(name: str) -> list[bool]:
        return [
            i in producer and producer[i].op_type == "DequantizeLinear" for i in adds[name].input
        ]

    assert dq_fed("residual") == [True, True]
    assert not any(dq_fed("mask_add")) and dq_fed("bias_add")[1] is False
    assert check_qdq(q, excluded=non_residual_adds(model)).ok


def _with_int32_bias(model: onnx.ModelProto) -> onnx.ModelProto:
    """The good model with its Conv bias stored as INT32 behind a DequantizeLinear — what ONNX
    Runtime's quantizer writes unless told QuantizeBias=False."""
    g = model.graph
    g.initializer.extend(
        [
            numpy_helper.from_array(np.arange(4, dtype=np.int32) * 100, "b_q"),
            numpy_helper.from_array(np.full(4, 0.0005, np.float32), "b_s"),
        ]
    )
    g.node.insert(0, helper.make_node("DequantizeLinear", ["b_q", "b_s"], ["b"], name="dq_b", axis=0))
    conv = next(n for n in g.node if n.op_type == "Conv")
    conv.input.append("b")
    return model


def test_int32_bias_dequantize_is_refused_by_checker_and_lint() -> None:
    from medfuse.export import lint_tensorrt

    model = _with_int32_bias(_model())
    assert ("dq_b", "dq_input_type") in _rules(model)
    assert check_qdq(_model()).ok  # the same graph with its bias in float passes
    lint = lint_tensorrt(model)
    found = [f for f in lint.findings if f.code == "dq-input-type"]
    assert not lint.ok and [f.node for f in found] == ["dq_b"]
    assert "INT32" in found[0].message and "QuantizeBias=False" in found[0].message
    assert not [f for f in lint_tensorrt(_model()).findings if f.code == "dq-input-type"]


def test_uint8_activation_dequantize_is_refused() -> None:
    model = _model()
    for init in model.graph.initializer:
        if init.name == "a_z":
            init.CopyFrom(numpy_helper.from_array(np.array(0, np.uint8), "a_z"))
    rules = _rules(model)
    assert ("dq_x", "dq_input_type") in rules and ("dq_y", "dq_input_type") in rules
