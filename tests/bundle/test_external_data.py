"""ONNX external data: found in the model's protobuf without the onnx package, carried into the
bundle by write_bundle, and hash-checked (listed, unchanged, inside the bundle) before use."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from helpers.onnx_bundles import TINY_CT_SHAPE, make_bundle, reference_outputs, tiny_onnx
from medfuse.bundle import Bundle, VariantSource, open_bundle, update_bundle
from medfuse.bundle.external_data import external_data_locations
from medfuse.bundle.integrity import sha256_file
from medfuse.errors import BundleError, IntegrityError


def _with_external_data(model: Path, out: Path, location: str = "weights.bin") -> Path:
    """``model`` re-saved with its weight matrix ``W`` in the file ``location`` beside it."""
    from onnx.external_data_helper import set_external_data

    m = onnx.load(str(model))
    set_external_data(next(t for t in m.graph.initializer if t.name == "W"), location)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(m, str(out))
    assert (out.parent / location).is_file()
    return out


@pytest.fixture
def external(tmp_path: Path) -> Bundle:
    """The tiny bundle whose fp32 variant keeps its weights in ``weights.bin``."""
    plain = make_bundle(tmp_path / "plain")
    src = _with_external_data(plain.variant_file("fp32"), tmp_path / "ext" / "model.onnx")
    return update_bundle(plain, add_variants={"fp32": VariantSource(src)})


def test_locations_are_found_in_nested_graphs(tmp_path: Path) -> None:
    w_outer = numpy_helper.from_array(np.ones((4, 4), np.float32), "W")
    w_inner = numpy_helper.from_array(np.ones((4, 4), np.float32), "W2")
    out = helper.make_tensor_value_info("o", TensorProto.FLOAT, [4, 4])
    then = helper.make_graph([helper.make_node("Identity", ["W2"], ["o"])], "t", [], [out], [w_inner])
    other = helper.make_graph([helper.make_node("Identity", ["W"], ["o"])], "e", [], [out])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["o"], then_branch=then, else_branch=other)],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [out],
        [w_outer],
    )
    path = tmp_path / "m.onnx"
    onnx.save_model(
        helper.make_model(graph), str(path), save_as_external_data=True,
        all_tensors_to_one_file=False, size_threshold=0,
    )
    assert external_data_locations(path, name="m.onnx") == ("W", "W2")
    plain = tiny_onnx(tmp_path / "plain.onnx")
    assert external_data_locations(plain, name="plain.onnx") == ()


def test_not_an_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"\xff" * 64)
    with pytest.raises(BundleError, match=r"junk\.onnx is not a readable ONNX model"):
        external_data_locations(tmp_path / "junk.onnx", name="junk.onnx")


def test_write_bundle_carries_and_lists_external_data(external: Bundle) -> None:
    assert "weights.bin" in external.manifest.artifacts
    assert external.manifest.artifacts["weights.bin"] == sha256_file(external.path / "weights.bin")
    assert external.verify().ok


def test_intact_external_data_runs(external: Bundle) -> None:
    from medfuse import Session

    rng = np.random.default_rng(3)
    ct = rng.standard_normal((2, *TINY_CT_SHAPE)).astype(np.float32)
    presence = np.ones((2, 1), np.float32)
    with Session(external.path, precision="fp32") as s:
        got = s.infer({"ct": ct, "presence": presence})
    np.testing.assert_allclose(got["diagnosis"], reference_outputs(ct, presence)[0], rtol=1e-5)


def test_tampered_external_data_is_refused(external: Bundle) -> None:
    weights = external.path / "weights.bin"
    data = np.frombuffer(weights.read_bytes(), np.float32).copy()
    data[:] *= 2  # the attack: changed weights, same size
    weights.write_bytes(data.tobytes())
    with pytest.raises(IntegrityError, match=r"weights\.bin does not match the manifest"):
        open_bundle(external.path).variant_file("fp32")
    from medfuse import Session

    with pytest.raises(IntegrityError, match=r"weights\.bin"):
        Session(external.path, precision="fp32")


def _edit(bundle: Bundle, edit: object) -> None:
    path = bundle.path / "manifest.json"
    doc = json.loads(path.read_text())
    edit(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))


def test_wrong_hash_for_external_data_is_refused(external: Bundle) -> None:
    _edit(external, lambda d: d["artifacts"].update({"weights.bin": "0" * 64}))
    with pytest.raises(IntegrityError, match=r"weights\.bin does not match"):
        open_bundle(external.path).variant_file("fp32")


def test_unlisted_external_data_is_refused(external: Bundle) -> None:
    _edit(external, lambda d: d["artifacts"].pop("weights.bin"))
    reopened = open_bundle(external.path)
    with pytest.raises(IntegrityError, match=r"loads external data weights\.bin, which the manifest does not list"):
        reopened.variant_file("fp32")
    assert [(p.file, p.kind) for p in reopened.verify().problems] == [("weights.bin", "unlisted")]


def test_external_data_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    plain = make_bundle(tmp_path / "plain")
    src = _with_external_data(plain.variant_file("fp32"), tmp_path / "ext" / "model.onnx")
    # what an attacker would write: a verified model whose data sits outside the bundle
    m = onnx.load(str(src), load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../outside.bin"
    target = plain.path / "model.fp32.onnx"
    onnx.save(m, str(target))
    _edit(plain, lambda d: [d["variants"]["fp32"].update({"sha256": sha256_file(target)}),
                            d["artifacts"].update({"model.fp32.onnx": sha256_file(target)})])
    with pytest.raises(IntegrityError, match=r"outside the bundle"):
        open_bundle(plain.path).variant_file("fp32")
    with pytest.raises(BundleError, match="outside its folder"):
        update_bundle(open_bundle(plain.path), add_variants={"fp16": VariantSource(target)})
