"""The manifest's golden record and per-variant tolerances: round trip, validation, fallback."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from helpers.onnx_bundles import make_bundle, tiny_onnx
from medfuse.bundle import GoldenRecord, Manifest, VariantSource, open_bundle, update_bundle
from medfuse.errors import ManifestError
from medfuse.runtime.validate import validate_bundle


def test_golden_record_round_trips_and_reports_its_source(tmp_path: Path) -> None:
    b = make_bundle(tmp_path)
    rec = GoldenRecord(
        rows={"studies": 3, "calibration": 8, "random": 0},
        reference="pytorch+onnxruntime-fp32",
        written_by="quantize",
    )
    m = dataclasses.replace(b.manifest, golden=rec)
    back = Manifest.from_json(m.to_json())
    assert back.golden == rec
    assert back.golden is not None and back.golden.source == "studies+calibration"
    assert back.golden.count == 11 and not back.golden.random
    assert dict(back.golden.rows) == {"studies": 3, "calibration": 8}  # zero counts dropped


def test_older_manifest_falls_back_to_the_provenance(tmp_path: Path) -> None:
    b = make_bundle(tmp_path)
    assert b.manifest.golden is None and b.manifest.golden_source == "unknown"
    legacy = dataclasses.replace(
        b.manifest.provenance, extra={"golden_source": "studies"}
    )
    assert dataclasses.replace(b.manifest, provenance=legacy).golden_source == "studies"


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"rows": {"guessed": 2}, "reference": "pytorch", "written_by": "export"}, "golden.rows"),
        ({"rows": {"random": -1}, "reference": "pytorch", "written_by": "export"}, "random"),
        ({"rows": {"random": 1}, "written_by": "export"}, "golden.reference"),
        ({"rows": {"random": 1}, "reference": "pytorch", "written_by": "x", "file": "../g"}, "file"),
    ],
)
def test_bad_golden_record_is_a_manifest_error(tmp_path: Path, doc: dict, field: str) -> None:
    b = make_bundle(tmp_path)
    d = b.manifest.to_dict()
    d["golden"] = {"file": "golden.npz", **doc}
    with pytest.raises(ManifestError, match=field.replace(".", r"\.")):
        Manifest.from_dict(d)


@pytest.mark.parametrize(
    "tol", [{"max_abs_rel": 0}, {"max_abs_rel": "1"}, {"max_abs_rel": 0.1, "min_top1": 2}]
)
def test_bad_variant_tolerance_is_a_manifest_error(tmp_path: Path, tol: dict) -> None:
    d = make_bundle(tmp_path).manifest.to_dict()
    d["variants"]["fp32"]["tolerance"] = tol
    with pytest.raises(ManifestError, match=r"variants\['fp32'\]\.tolerance"):
        Manifest.from_dict(d)


@pytest.mark.parametrize(("allowed", "passes"), [(1e-2, True), (1e-6, False)])
def test_validate_applies_the_recorded_tolerance(
    tmp_path: Path, allowed: float, passes: bool
) -> None:
    """An fp16 variant 0.1 % off: the default 1e-2 would pass it either way; the recorded
    tolerance decides, and the report says where it came from."""
    b = make_bundle(tmp_path)
    off = tiny_onnx(tmp_path / "off.onnx", scale=1.001)
    b = update_bundle(
        b,
        add_variants={"fp16": VariantSource(off, tolerance={"max_abs_rel": allowed})},
    )
    assert open_bundle(b.path).manifest.variants["fp16"].tolerance == {"max_abs_rel": allowed}
    report = validate_bundle(b.path, ["onnxruntime"], ["fp16"], device="cpu")
    check = report.checks[0]
    assert check.tolerance.source == "manifest" and check.tolerance.max_abs_rel == allowed
    assert report.passed is passes
    if not passes:
        assert "manifest tolerance" in report.failures()[0]
        assert np.isfinite(check.outputs[0].max_abs_error)
