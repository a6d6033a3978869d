"""Session over tensors: infer vs bare ONNX Runtime, reused outputs, info, lifecycle, mismatches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from helpers.onnx_bundles import (
    fusion_bundle,
    fusion_model,
    fusion_reference,
    fusion_spec,
    random_feeds,
)
from medfuse.bundle import Bundle, Provenance, VariantSource, write_bundle
from medfuse.errors import BackendError, IncompatibleBundleError, UsageError
from medfuse.runtime.results import apply_activation
from medfuse.runtime.session import Session


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    made: Bundle = fusion_bundle(tmp_path_factory.mktemp("sess"))
    return made


def test_infer_matches_bare_inference_session(bundle: Bundle) -> None:
    feeds = random_feeds(4)
    with Session(bundle.path, device="cpu", threads=1) as session:
        out = {k: v.copy() for k, v in session.infer(feeds).items()}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    bare = ort.InferenceSession(
        str(bundle.variant_file("fp32")), opts, providers=["CPUExecutionProvider"]
    )
    for node, arr in zip(bare.get_outputs(), bare.run(None, feeds), strict=True):
        np.testing.assert_array_equal(out[node.name], arr)


def test_infer_outputs_are_views_reused_across_calls(bundle: Bundle) -> None:
    with Session(bundle) as session:
        a = session.infer(random_feeds(2, seed=1))
        keep = a["diagnosis"].copy()
        b = session.infer(random_feeds(2, seed=2))
        assert b["diagnosis"] is a["diagnosis"]
        assert np.shares_memory(b["diagnosis"], session.buffers(2).outputs["diagnosis"])
        np.testing.assert_allclose(
            keep, fusion_reference(random_feeds(2, seed=1))["diagnosis"], atol=1e-5
        )


def test_info_says_what_runs_and_why(bundle: Bundle) -> None:
    with Session(bundle, device="cpu") as session:
        info = session.info.to_dict()
    json.dumps(info)
    assert info["name"] == "mini-fusion" and info["version"] == "0.1.0"
    assert info["backend"] == "onnxruntime" and info["variant"] == "fp32"
    assert info["providers"] == ["CPUExecutionProvider"]
    assert info["model_sha256"] == bundle.manifest.variants["fp32"].sha256
    assert "precision fp32" in info["reason"]


def test_closed_session_refuses(bundle: Bundle) -> None:
    with Session(bundle) as session:
        pass
    with pytest.raises(BackendError, match="not active"):
        session.infer(random_feeds(1))


def test_bare_onnx_file_runs_infer_but_not_predict(tmp_path: Path) -> None:
    model = fusion_model(tmp_path / "m.onnx")
    feeds = random_feeds(2)
    with Session(model) as session:
        np.testing.assert_allclose(
            session.infer(feeds)["severity"], fusion_reference(feeds)["severity"], atol=1e-5
        )
        assert session.spec is None and session.info.model_name == "m"
        with pytest.raises(UsageError, match="predict needs a bundle"):
            session.predict_many([])


def test_feeds_errors_surface_from_session(bundle: Bundle) -> None:
    with Session(bundle, max_batch=2) as session:
        with pytest.raises(BackendError, match="batch size 3 is not allowed"):
            session.infer(random_feeds(3))
        feeds = random_feeds(1)
        feeds["presence"][0, 0] = np.nan
        with pytest.raises(BackendError, match="'presence': 1 non-finite"):
            session.infer(feeds)


def test_manifest_that_does_not_match_the_graph_is_refused(tmp_path: Path) -> None:
    spec = fusion_spec()
    model = fusion_model(tmp_path / "m.onnx")
    wrong = type(spec)(
        name=spec.name,
        version=spec.version,
        inputs=spec.inputs,
        outputs=(
            spec.outputs[0],
            type(spec.outputs[1])(
                "grade", "grade", ("batch", 1), kind="regression", activation="identity"
            ),
        ),
    )
    b = write_bundle(
        tmp_path / "w.medfuse",
        spec=wrong,
        variants={"fp32": VariantSource(model)},
        provenance=Provenance(),
    )
    with pytest.raises(
        IncompatibleBundleError, match=r"do not match the model file model\.fp32\.onnx"
    ):
        Session(b)


def test_warmup_binds_and_runs(bundle: Bundle) -> None:
    with Session(bundle) as session:
        session.warmup(batch=3)
        assert session.buffers(3).outputs["diagnosis"].shape == (3, 3)


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "identity"])
def test_activations_match_their_formulas(activation: str) -> None:
    x = np.array([[-800.0, 0.0, 3.5], [1.0, 2.0, 3.0]])
    got = apply_activation(x, activation)
    if activation == "softmax":
        e = np.exp(x - x.max(axis=1, keepdims=True))
        want = e / e.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(got.sum(axis=1), 1.0)
    elif activation == "sigmoid":
        with np.errstate(over="ignore"):
            want = 1.0 / (1.0 + np.exp(-x))
    else:
        want = x
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
