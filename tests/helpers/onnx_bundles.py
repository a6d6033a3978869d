"""Small real ONNX models and bundles for the tests, built with onnx.helper (no torch).

Two models, each with a float64 numpy twin that serves as the independent reference:

*tiny* (:func:`tiny_spec`, :func:`tiny_onnx`, :func:`reference_outputs`, :func:`make_bundle`)
    One CT volume ``ct`` (batch, 2, 4, 8, 8; NCDHW, a volume recipe with two windows) and a
    presence mask ``presence`` (batch, 1): ``diagnosis = mean(ct) * presence @ W`` (3 logits),
    ``severity = mean(ct) * presence + B``.
*fusion* (:func:`fusion_spec`, :func:`fusion_model`, :func:`fusion_reference`,
:func:`fusion_bundle`)
    A miniature multimodal fusion net: ``ct`` (NCHW 2×8×8, required), ``mr`` (NCHW 1×8×8,
    optional), a presence mask ``presence`` (batch, 2); ``diagnosis`` (batch, 3 logits) and
    ``severity`` (batch, 1).

:func:`save_model` is the one place a test graph becomes a checked ``.onnx`` file; the other ONNX
builders of the suite (``helpers.screening_fixtures``, ``helpers.calib_models``) use it too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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

TINY_CT_SHAPE = (2, 4, 8, 8)
TINY_W = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
TINY_B = np.array([0.25], dtype=np.float32)

FUSION_CT_SHAPE = (2, 8, 8)
FUSION_MR_SHAPE = (1, 8, 8)
FUSION_HIDDEN = 4


# ---- shared graph plumbing -----------------------------------------------------------------------


def float_io(name: str, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    """A float32 graph input or output named ``name`` with ``shape`` (ints or symbolic names)."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def save_model(graph: onnx.GraphProto, path: Path, *, ir_version: int, opset: int = 18) -> Path:
    """Wrap ``graph`` in a model of the default domain at ``opset``, check it and save it.

    Parameters
    ----------
    graph
        The graph, from ``onnx.helper.make_graph``.
    path
        Where to write the model (parent folders are created).
    ir_version
        The model's IR version (kept low enough for the ONNX Runtime in use).
    opset
        The default-domain opset.

    Returns
    -------
    Path
        ``path``.
    """
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _source_dir(root: Path) -> Path:
    """``root/src``, created: where a bundle's model and golden file are written first."""
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    return src


# ---- the tiny model ------------------------------------------------------------------------------


def tiny_spec() -> ModelSpec:
    """An image input with a CT volume recipe, a presence mask, a classification and a
    regression output."""
    ct = PreprocessRecipe(
        selection=SeriesSelection(("CT",), rule="most_frames", min_frames=4),
        geometry="volume",
        size=TINY_CT_SHAPE[1:],
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
                ("batch", *TINY_CT_SHAPE),
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
    inits = [
        numpy_helper.from_array(np.array([1, 2, 3, 4], dtype=np.int64), "axes"),
        numpy_helper.from_array(TINY_W * np.float32(scale), "W"),
        numpy_helper.from_array(TINY_B, "B"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["ct", "axes"], ["m4"], keepdims=0),
        helper.make_node("Unsqueeze", ["m4", "one"], ["m"]),
        helper.make_node("Mul", ["m", "presence"], ["mp"]),
        helper.make_node("MatMul", ["mp", "W"], ["diagnosis"]),
        helper.make_node("Add", ["mp", "B"], ["severity"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [float_io("ct", ["batch", *TINY_CT_SHAPE]), float_io("presence", ["batch", 1])],
        [float_io("diagnosis", ["batch", 3]), float_io("severity", ["batch", 1])],
        inits,
    )
    return save_model(graph, path, ir_version=9)


def reference_outputs(
    ct: np.ndarray, presence: np.ndarray, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """The tiny model's outputs computed with numpy (float64), independent of ONNX Runtime."""
    m = ct.astype(np.float64).mean(axis=(1, 2, 3, 4))[:, None] * presence.astype(np.float64)
    return m @ (TINY_W.astype(np.float64) * scale), m + TINY_B.astype(np.float64)


def make_bundle(root: Path, name: str = "tiny.medfuse") -> Bundle:
    """A bundle of the tiny model: an fp32 variant, ``golden.npz`` (numpy reference outputs) and
    ``reports/parity.json``, written by write_bundle."""
    src = _source_dir(root)
    onnx_path = tiny_onnx(src / "tiny.onnx")
    rng = np.random.default_rng(0)
    ct = rng.standard_normal((2, *TINY_CT_SHAPE)).astype(np.float32)
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


# ---- the fusion model ----------------------------------------------------------------------------


def fusion_weights(seed: int = 0) -> dict[str, NDArray[np.float32]]:
    """The fusion model's initializers: per-modality encoders, the presence gate, the heads."""
    rng = np.random.default_rng(seed)
    ct_n = int(np.prod(FUSION_CT_SHAPE))
    mr_n = int(np.prod(FUSION_MR_SHAPE))
    gate = np.zeros((2, 2 * FUSION_HIDDEN), np.float32)
    gate[0, :FUSION_HIDDEN] = 1.0
    gate[1, FUSION_HIDDEN:] = 1.0
    return {
        "W_ct": (rng.standard_normal((ct_n, FUSION_HIDDEN)) * 0.1).astype(np.float32),
        "W_mr": (rng.standard_normal((mr_n, FUSION_HIDDEN)) * 0.1).astype(np.float32),
        "G": gate,
        "W_dx": rng.standard_normal((2 * FUSION_HIDDEN, 3)).astype(np.float32),
        "b_dx": rng.standard_normal(3).astype(np.float32),
        "W_sev": rng.standard_normal((2 * FUSION_HIDDEN, 1)).astype(np.float32),
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
            float_io("ct", [batch, *FUSION_CT_SHAPE]),
            float_io("mr", [batch, *FUSION_MR_SHAPE]),
            float_io("presence", [batch, 2]),
        ],
        [float_io("diagnosis", [batch, 3]), float_io("severity", [batch, 1])],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in w.items()],
    )
    return save_model(graph, path, ir_version=10)


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
    """Standard-normal ``ct`` and ``mr`` for the fusion model, every modality present."""
    rng = np.random.default_rng(seed)
    return {
        "ct": rng.standard_normal((batch, *FUSION_CT_SHAPE)).astype(np.float32),
        "mr": rng.standard_normal((batch, *FUSION_MR_SHAPE)).astype(np.float32),
        "presence": np.ones((batch, 2), np.float32),
    }


def fusion_spec() -> ModelSpec:
    """The model spec of :func:`fusion_model`: CT required (2 windows), MR optional."""
    ct = PreprocessRecipe(
        selection=SeriesSelection(("CT",), rule="first"),
        geometry="image",
        size=FUSION_CT_SHAPE[1:],
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
        size=FUSION_MR_SHAPE[1:],
        intensity=IntensityRecipe(method="percentile", percentiles=(1.0, 99.0)),
    )
    return ModelSpec(
        name="mini-fusion",
        version="0.1.0",
        inputs=(
            InputSpec(
                "ct",
                ("batch", *FUSION_CT_SHAPE),
                layout="NCHW",
                modality="CT",
                required=True,
                preprocessing=ct,
            ),
            InputSpec(
                "mr", ("batch", *FUSION_MR_SHAPE), layout="NCHW", modality="MR", preprocessing=mr
            ),
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
    src = _source_dir(root)
    model = fusion_model(src / "model.onnx")
    feeds = random_feeds(golden_batch, seed=7)
    feeds["presence"][-1, 1] = 0.0
    feeds["mr"][-1] = 0.0
    ref = fusion_reference(feeds)
    golden: dict[str, Any] = {**feeds, **{k: v.astype(np.float32) for k, v in ref.items()}}
    np.savez(src / "golden.npz", **golden)
    return write_bundle(
        root / name,
        spec=fusion_spec(),
        variants={p: VariantSource(model) for p in precisions},
        files={"golden.npz": src / "golden.npz"},
        provenance=Provenance(onnx_version=onnx.__version__, opset=18),
    )
