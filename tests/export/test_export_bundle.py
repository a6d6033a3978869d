"""export_bundle: ONNX + lint + parity + golden vectors + reports, through medfuse.bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medfuse.bundle import open_bundle  # noqa: E402
from medfuse.export import export_bundle, onnx_outputs, random_inputs  # noqa: E402


def test_bundle_holds_variant_golden_reports_and_provenance(tiny, tmp_path: Path) -> None:
    module, spec = tiny
    bundle = export_bundle(
        module,
        spec,
        tmp_path / "tiny.medfuse",
        reports={"training": {"epochs": 3}},
        accuracy={"auroc_macro": 0.97},
        training_config_hash="abc123",
    )
    again = open_bundle(tmp_path / "tiny.medfuse")
    assert again.verify().ok
    m = again.manifest
    assert m.model == spec and set(m.variants) == {"fp32"}
    assert dict(m.variants["fp32"].accuracy)["auroc_macro"] == 0.97
    prov = m.provenance.to_dict()
    assert prov["opset"] >= 17 and prov["training_config_hash"] == "abc123"
    assert prov["torch_version"] == torch.__version__ and prov["onnx_version"]
    for rel in (
        "golden.npz",
        "reports/export_lint.json",
        "reports/export_parity.json",
        "reports/training.json",
    ):
        assert rel in m.artifacts, rel
    parity = json.loads((bundle.path / "reports" / "export_parity.json").read_text())
    assert parity["ok"] and [c["batch"] for c in parity["cases"]] == [1, 3]
    lint = json.loads((bundle.path / "reports" / "export_lint.json").read_text())
    assert lint["ok"] is True


def test_golden_vectors_reproduce_in_onnx_runtime(tiny, tmp_path: Path) -> None:
    module, spec = tiny
    real = random_inputs(spec, 5, seed=42)  # stands in for preprocessed studies
    bundle = export_bundle(module, spec, tmp_path / "g.medfuse", golden_inputs=real)
    with np.load(bundle.file("golden.npz")) as z:
        assert set(z.files) == {"image", "logits"}
        np.testing.assert_array_equal(z["image"], real["image"])
        got = onnx_outputs(bundle.variant_file("fp32"), spec, {"image": z["image"]})
        np.testing.assert_allclose(got["logits"], z["logits"], rtol=0, atol=1e-5)
    parity = json.loads((bundle.path / "reports" / "export_parity.json").read_text())
    assert [c["source"] for c in parity["cases"]] == ["random", "random", "studies"]
    assert open_bundle(bundle.path).manifest.provenance.to_dict()["golden_source"] == "studies"
