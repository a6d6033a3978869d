"""Small real ONNX models for backend and session tests, built with onnx.helper (no torch).

``fusion_model``: a miniature multimodal fusion net with the spec conventions of
:mod:`medfuse.bundle.spec`: two image inputs (``ct`` NCHW 2×8×8, ``mr`` NCHW 1×8×8), a presence
mask ``presence`` (batch, 2), outputs ``diagnosis`` (batch, 3 logits) and ``severity``
(batch, 1). ``fusion_reference`` computes the same math in numpy (the independent reference).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from medfuse.bundle import (
    Bundle,
    InputSpec,
    IntensityRecipe,
    ModelSpec,
    OutputSpec,
    PreprocessRecipe,
    Provenance,
    SeriesSelection,
    VariantSource,
    Window,
    write_bundle,
)

CT_SHAPE = (2, 8, 8)
MR_SHAPE = (1, 8, 8)
HIDDEN = 4


def fusion_weights(seed: int = 0) -> dict[str, NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    ct_n = int(np.prod(CT_SHAPE))
    mr_n = int(np.prod(MR_SHAPE))
    gate = np.zeros((2, 2 * HIDDEN), np.float32)
    gate[0, :HIDDEN] = 1.0
    gate[1, HIDDEN:] = 1.0
    return {
        "W_ct": (rng.standard_normal((ct_n, HIDDEN)) * 0.1).astype(np.float32),
        "W_mr": (rng.standard_normal((mr_n, HIDDEN)) * 0.1).astype(np.float32),
        "G": gate,
        "W_dx": rng.standard_normal((2 * HIDDEN, 3)).astype(np.float32),
        "b_dx": rng.standard_normal(3).astype(np.float32),
        "W_sev": rng.standard_normal((2 * HIDDEN, 1)).astype(np.float32),
    }


def fusion_model(path: Path, *, seed: int = 0, batch: int | str = "batch") -> Path:
    """Write the fusion model to ``path``; ``batch`` is the batch dim (symbolic by default)."""
    w = fusion_weights(seed)
    nodes = [
        helper.make_node("Flatten", ["ct"], ["ct_flat"], axis=1),
        helper.make_node("Flatten", ["mr"], ["mr_flat"], axis=1),
        helper.make_node("MatMul", ["ct_flat", "W_ct"], ["h_ct"]),
        helper.make_node("MatMul", ["mr_flat", "W_mr"], ["h_mr"]),
        helper.make_node("Concat", ["h_ct", "h_mr"], ["h"], axis=1),
        helper.make_node("MatMul", ["presence", "G"], ["gate"]),
        helper.make_node("Mul", ["h", "gate"], ["hg"]),
        helper.make_node("MatMul", ["hg", "W_dx"], ["dx0"]),
        helper.make_node("Add", ["dx0", "b_dx"], ["diagnosis"]),
        helper.make_node("MatMul", ["hg", "W_sev"], ["severity"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mini_fusion",
        [
            helper.make_tensor_value_info("ct", TensorProto.FLOAT, [batch, *CT_SHAPE]),
            helper.make_tensor_value_info("mr", TensorProto.FLOAT, [batch, *MR_SHAPE]),
            helper.make_tensor_value_info("presence", TensorProto.FLOAT, [batch, 2]),
        ],
        [
            helper.make_tensor_value_info("diagnosis", TensorProto.FLOAT, [batch, 3]),
            helper.make_tensor_value_info("severity", TensorProto.FLOAT, [batch, 1]),
        ],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in w.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def fusion_reference(feeds: dict[str, NDArray[Any]], seed: int = 0) -> dict[str, NDArray[Any]]:
    """The fusion model's outputs computed in float64 numpy."""
    w = {k: v.astype(np.float64) for k, v in fusion_weights(seed).items()}
    b = feeds["ct"].shape[0]
    h = np.concatenate(
        [feeds["ct"].reshape(b, -1) @ w["W_ct"], feeds["mr"].reshape(b, -1) @ w["W_mr"]], axis=1
    )
    hg = h * (feeds["presence"].astype(np.float64) @ w["G"])
    return {"diagnosis": hg @ w["W_dx"] + w["b_dx"], "severity": hg @ w["W_sev"]}


def random_feeds(batch: int, seed: int = 1) -> dict[str, NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    return {
        "ct": rng.standard_normal((batch, *CT_SHAPE)).astype(np.float32),
        "mr": rng.standard_normal((batch, *MR_SHAPE)).astype(np.float32),
        "presence": np.ones((batch, 2), np.float32),
    }


def symbolic_output_model(path: Path) -> Path:
    """A model whose output width is symbolic in the graph (Reshape to [batch, -1])."""
    nodes = [
        helper.make_node(
            "Constant", [], ["shape"], value=numpy_helper.from_array(np.array([0, -1], np.int64))
        ),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "reshape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


def fusion_spec() -> ModelSpec:
    """The model spec of :func:`fusion_model`: CT required (2 windows), MR optional."""
    ct = PreprocessRecipe(
        selection=SeriesSelection(("CT",), rule="first"),
        geometry="image",
        size=CT_SHAPE[1:],
        intensity=IntensityRecipe(
            method="windows",
            windows=(Window(40, 400), Window(300, 1500)),
            mean=(0.5, 0.5),
            std=(0.25, 0.25),
        ),
    )
    mr = PreprocessRecipe(
        selection=SeriesSelection(("MR",), rule="first"),
        geometry="image",
        size=MR_SHAPE[1:],
        intensity=IntensityRecipe(method="percentile", percentiles=(1.0, 99.0)),
    )
    return ModelSpec(
        name="mini-fusion",
        version="0.1.0",
        inputs=(
            InputSpec(
                "ct",
                ("batch", *CT_SHAPE),
                layout="NCHW",
                modality="CT",
                required=True,
                preprocessing=ct,
            ),
            InputSpec("mr", ("batch", *MR_SHAPE), layout="NCHW", modality="MR", preprocessing=mr),
            InputSpec("presence", ("batch", 2), role="presence"),
        ),
        outputs=(
            OutputSpec(
                "diagnosis",
                "diagnosis logits",
                ("batch", 3),
                labels=("normal", "benign", "malignant"),
            ),
            OutputSpec(
                "severity", "burden score", ("batch", 1), kind="regression", activation="identity"
            ),
        ),
    )


def fusion_bundle(
    root: Path,
    *,
    precisions: tuple[str, ...] = ("fp32",),
    golden_batch: int = 4,
    name: str = "mini.medfuse",
) -> Bundle:
    """A bundle of the fusion model: one variant file per precision (seed-identical graphs),
    ``golden.npz`` with FP32 reference outputs computed in numpy."""
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    model = fusion_model(src / "model.onnx")
    feeds = random_feeds(golden_batch, seed=7)
    feeds["presence"][-1, 1] = 0.0
    feeds["mr"][-1] = 0.0
    ref = fusion_reference(feeds)
    np.savez(src / "golden.npz", **feeds, **{k: v.astype(np.float32) for k, v in ref.items()})
    return write_bundle(
        root / name,
        spec=fusion_spec(),
        variants={p: VariantSource(model) for p in precisions},
        files={"golden.npz": src / "golden.npz"},
        provenance=Provenance(onnx_version=onnx.__version__, opset=18),
    )
