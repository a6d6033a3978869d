"""Small real ONNX fusion models (onnx.helper) with the reference spec's inputs and outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from helpers.onnx_bundles import float_io, save_model
from medfuse.bundle import Bundle, Provenance, VariantSource, write_bundle
from medfuse.models import model_spec

SENSITIVE_NODE = "ct_conv2"


def fusion_onnx(path: Path, *, seed: int = 0, sensitive: bool = False, opset: int = 17) -> Path:
    """ct/mr/xr conv encoders (a residual block on ct), concat with presence, Gemm + MatMul heads.

    With ``sensitive``, one output channel of ``ct_conv1`` is 300× larger than the others, so the
    per-tensor INT8 activation feeding ``ct_conv2`` crushes the small channels.
    """
    rng = np.random.default_rng(seed)

    def w(name: str, *shape: int, scale: float = 0.3) -> onnx.TensorProto:
        return numpy_helper.from_array(
            (rng.standard_normal(shape) * scale).astype(np.float32), name
        )

    ct1 = (rng.standard_normal((4, 2, 4, 4, 4)) * 0.1).astype(np.float32)
    if sensitive:
        ct1[0] *= 300.0
    inits = [
        numpy_helper.from_array(ct1, "ct_w1"),
        w("ct_w2", 4, 4, 1, 1, 1),
        w("mr_w", 4, 1, 4, 4, 4, scale=0.1),
        w("xr_w", 4, 1, 4, 4, scale=0.2),
        w("fc_w", 16, 15),
        w("fc_b", 16),
        w("dx_w", 16, 4),
        w("dx_b", 4),
        w("sev_w", 1, 16),
        w("sev_b", 1),
    ]
    if sensitive:  # keep the big channel out of the features so small channels matter
        inits.append(
            numpy_helper.from_array(
                np.array([0, 1, 1, 1], np.float32).reshape(1, 4, 1, 1, 1), "ct_mask"
            )
        )
    n = helper.make_node
    nodes = [
        n("Conv", ["ct", "ct_w1"], ["ct_c1"], name="ct_conv1", strides=[4, 4, 4]),
        n("Relu", ["ct_c1"], ["ct_r1"], name="ct_relu1"),
        n("Conv", ["ct_r1", "ct_w2"], ["ct_c2"], name=SENSITIVE_NODE),
    ]
    if sensitive:
        nodes += [
            n("Mul", ["ct_c2", "ct_mask"], ["ct_c2m"], name="ct_mask_mul"),
            n("Mul", ["ct_r1", "ct_mask"], ["ct_r1m"], name="ct_mask_mul2"),
            n("Add", ["ct_c2m", "ct_r1m"], ["ct_res"], name="ct_residual"),
        ]
    else:
        nodes.append(n("Add", ["ct_c2", "ct_r1"], ["ct_res"], name="ct_residual"))
    nodes += [
        n("GlobalAveragePool", ["ct_res"], ["ct_g"], name="ct_gap"),
        n("Flatten", ["ct_g"], ["ct_f"], name="ct_flat"),
        n("Conv", ["mr", "mr_w"], ["mr_c"], name="mr_conv", strides=[4, 4, 4]),
        n("Relu", ["mr_c"], ["mr_r"], name="mr_relu"),
        n("GlobalAveragePool", ["mr_r"], ["mr_g"], name="mr_gap"),
        n("Flatten", ["mr_g"], ["mr_f"], name="mr_flat"),
        n("Conv", ["xr", "xr_w"], ["xr_c"], name="xr_conv", strides=[4, 4]),
        n("Relu", ["xr_c"], ["xr_r"], name="xr_relu"),
        n("GlobalAveragePool", ["xr_r"], ["xr_g"], name="xr_gap"),
        n("Flatten", ["xr_g"], ["xr_f"], name="xr_flat"),
        n("Concat", ["ct_f", "mr_f", "xr_f", "presence"], ["feat"], name="concat", axis=1),
        n("Gemm", ["feat", "fc_w", "fc_b"], ["h"], name="fc", transB=1),
        n("Relu", ["h"], ["hr"], name="fc_relu"),
        n("MatMul", ["hr", "dx_w"], ["dx"], name="dx_matmul"),
        n("Add", ["dx", "dx_b"], ["diagnosis"], name="dx_bias"),
        n("Gemm", ["hr", "sev_w", "sev_b"], ["severity"], name="sev", transB=1),
    ]
    spec = model_spec("reference")
    inputs = [float_io(i.name, i.shape) for i in spec.inputs]
    outputs = [float_io(o.name, o.shape) for o in spec.outputs]
    graph = helper.make_graph(nodes, "fusion", inputs, outputs, inits)
    return save_model(graph, path, ir_version=8, opset=opset)


def fusion_bundle(root: Path, name: str = "fusion.medfuse", **kw: object) -> Bundle:
    """A bundle with the reference spec, the model above as fp32 and ORT-computed golden vectors."""
    import onnxruntime as ort

    spec = model_spec("reference")
    src = root / f"{name}-src"
    src.mkdir(parents=True, exist_ok=True)
    onnx_path = fusion_onnx(src / "model.onnx", **kw)  # type: ignore[arg-type]
    rng = np.random.default_rng(5)
    golden: dict[str, Any] = {
        i.name: rng.standard_normal((4, *i.sample_shape())).astype(np.float32) for i in spec.inputs
    }
    golden["presence"] = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 0], [0, 1, 1]], np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, golden)
    np.savez(src / "golden.npz", **golden, diagnosis=outs[0], severity=outs[1])
    return write_bundle(
        root / name,
        spec=spec,
        variants={"fp32": VariantSource(onnx_path)},
        files={"golden.npz": src / "golden.npz"},
        provenance=Provenance(opset=17),
    )
