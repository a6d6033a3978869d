"""Builders for test bundles: a tiny ModelSpec and a matching real ONNX model (onnx.helper).

Shared by ``tests/bundle`` and ``tests/cli/test_inspect.py`` (loaded there by file path).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
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

# The tiny model: diagnosis = mean(ct) * presence @ W ; severity = mean(ct) * presence + B
W = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
B = np.array([0.25], dtype=np.float32)
CT_SHAPE = (2, 4, 8, 8)


def tiny_spec() -> ModelSpec:
    """An image input with a CT volume recipe, a presence mask, a classification and a
    regression output."""
    ct = PreprocessRecipe(
        selection=SeriesSelection(("CT",), rule="most_frames", min_frames=4),
        geometry="volume",
        size=CT_SHAPE[1:],
        spacing=(5.0, 1.5, 1.5),
        intensity=IntensityRecipe(
            method="windows",
            windows=(Window(40, 400), Window(500, 2000, "LINEAR_EXACT")),
            mean=(0.5, 0.2),
            std=(0.25, 0.2),
        ),
    )
    return ModelSpec(
        name="tiny-fusion",
        version="0.0.1",
        description="test model",
        inputs=(
            InputSpec(
                "ct",
                ("batch", *CT_SHAPE),
                layout="NCDHW",
                modality="CT",
                required=True,
                preprocessing=ct,
            ),
            InputSpec("presence", ("batch", 1), role="presence"),
        ),
        outputs=(
            OutputSpec(
                "diagnosis", "diagnosis logits", ("batch", 3), labels=("normal", "nodule", "mass")
            ),
            OutputSpec(
                "severity", "burden score", ("batch", 1), kind="regression", activation="identity"
            ),
        ),
    )


def tiny_onnx(path: Path, *, scale: float = 1.0) -> Path:
    """Write the tiny model (``scale`` multiplies W, to make a distinct variant)."""
    ct = helper.make_tensor_value_info("ct", TensorProto.FLOAT, ["batch", *CT_SHAPE])
    presence = helper.make_tensor_value_info("presence", TensorProto.FLOAT, ["batch", 1])
    diagnosis = helper.make_tensor_value_info("diagnosis", TensorProto.FLOAT, ["batch", 3])
    severity = helper.make_tensor_value_info("severity", TensorProto.FLOAT, ["batch", 1])
    inits = [
        numpy_helper.from_array(np.array([1, 2, 3, 4], dtype=np.int64), "axes"),
        numpy_helper.from_array(W * np.float32(scale), "W"),
        numpy_helper.from_array(B, "B"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["ct", "axes"], ["m4"], keepdims=0),
        helper.make_node("Unsqueeze", ["m4", "one"], ["m"]),
        helper.make_node("Mul", ["m", "presence"], ["mp"]),
        helper.make_node("MatMul", ["mp", "W"], ["diagnosis"]),
        helper.make_node("Add", ["mp", "B"], ["severity"]),
    ]
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "one"))
    graph = helper.make_graph(nodes, "tiny", [ct, presence], [diagnosis, severity], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def reference_outputs(
    ct: np.ndarray, presence: np.ndarray, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The tiny model's outputs computed with numpy (float64), independent of ONNX Runtime."""
    m = ct.astype(np.float64).mean(axis=(1, 2, 3, 4))[:, None] * presence.astype(np.float64)
    return m @ (W.astype(np.float64) * scale), m + B.astype(np.float64)


def make_bundle(root: Path, name: str = "tiny.medfuse") -> Bundle:
    """A bundle with an fp32 variant, golden.npz and a report, written by write_bundle."""
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    onnx_path = tiny_onnx(src / "tiny.onnx")
    rng = np.random.default_rng(0)
    ct = rng.standard_normal((2, *CT_SHAPE)).astype(np.float32)
    presence = np.array([[1.0], [0.0]], dtype=np.float32)
    diag, sev = reference_outputs(ct, presence)
    np.savez(src / "golden.npz", ct=ct, presence=presence, diagnosis=diag, severity=sev)
    (src / "parity.json").write_text(json.dumps({"max_abs_diff": 1e-7}))
    return write_bundle(
        root / name,
        spec=tiny_spec(),
        variants={"fp32": VariantSource(onnx_path, accuracy={"top1_agreement": 1.0})},
        files={"golden.npz": src / "golden.npz", "reports/parity.json": src / "parity.json"},
        provenance=Provenance(
            torch_version="2.13.0",
            onnx_version=onnx.__version__,
            opset=18,
            training_config_hash="ab" * 32,
        ),
    )
