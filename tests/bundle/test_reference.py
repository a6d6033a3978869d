"""The shipped reference bundle's location."""

from __future__ import annotations

from pathlib import Path

import pytest

import medfuse
from medfuse.bundle import open_bundle, reference_bundle_path
from medfuse.errors import BundleError

SHIPPED = Path(medfuse.__file__).parent / "data" / "reference.medfuse"


def test_reference_bundle_path() -> None:
    if (SHIPPED / "manifest.json").is_file():
        assert reference_bundle_path() == SHIPPED
        assert open_bundle(reference_bundle_path()).verify().ok
    else:
        with pytest.raises(BundleError, match=r"reference bundle .* is not installed"):
            reference_bundle_path()


@pytest.mark.skipif(not (SHIPPED / "manifest.json").is_file(), reason="reference not installed")
def test_shipped_quantized_variants_carry_their_evidence() -> None:
    """int8 / int8-cpu / fp16 ship with the gate's figures, calibration provenance and report."""
    import numpy as np
    import onnxruntime as ort

    from medfuse.calibration import check_qdq

    b = open_bundle(SHIPPED)
    assert set(b.precisions) == {"fp32", "int8", "int8-cpu", "fp16"}
    for p in ("int8", "int8-cpu", "fp16"):
        acc = b.manifest.variants[p].accuracy
        diag = acc["outputs"]["diagnosis"]
        assert acc["gate"] == "passed" and diag["agreement"] >= 0.99, (p, diag)
        assert diag["auroc_drop"] <= 0.01 and diag["n"] >= 100, (p, diag)
    for p in ("int8", "int8-cpu"):
        cal = b.manifest.variants[p].calibration
        assert cal is not None and cal["method"] == "minmax" and cal["studies"] >= 32
        assert len(cal["set_sha256"]) == 64
    qdq = check_qdq(
        b.variant_file("int8"), excluded=b.manifest.variants["int8"].accuracy["nodes_excluded"]
    )
    assert qdq.ok, qdq.violations
    assert {"reports/quantization.json", "reports/quantization.md"} <= set(b.manifest.artifacts)
    # the golden vectors still come out as the gate said (argmax kept, logits close)
    with np.load(b.file("golden.npz")) as z:
        feeds = {i.name: z[i.name] for i in b.spec.inputs}
        want = z["diagnosis"]
    for p in ("int8", "int8-cpu", "fp16"):
        sess = ort.InferenceSession(str(b.variant_file(p)), providers=["CPUExecutionProvider"])
        got = sess.run(["diagnosis"], feeds)[0]
        assert (got.argmax(1) == want.argmax(1)).all(), p
        assert np.abs(got - want).max() < 0.5, p
