"""``medfuse validate``: the real CLI in a subprocess, plus the validate_bundle API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.onnx_bundles import (
    fusion_bundle,
    fusion_model,
    fusion_reference,
    fusion_spec,
    random_feeds,
)
from medfuse.bundle import Bundle, Provenance, VariantSource, write_bundle
from medfuse.runtime.validate import tolerance_for, validate_bundle


def _validate(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDFUSE_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", "validate", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    made: Bundle = fusion_bundle(tmp_path, precisions=("fp32", "int8-cpu"))
    return made


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_validate_passes_and_writes_report(bundle: Bundle, tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.json"
    out = _validate(str(bundle.path), "--report", str(report), tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "validation passed: 2" in out.stdout
    data = json.loads(report.read_text())
    assert data["passed"] is True
    assert {c["precision"] for c in data["checks"]} == {"fp32", "int8-cpu"}
    assert data["bundle"]["variants"]["fp32"] == bundle.manifest.variants["fp32"].sha256
    dev = data["device"]
    assert (
        dev["cpu_cores"] >= 1
        and dev["onnxruntime"]
        and "CPUExecutionProvider" in dev["onnxruntime_providers"]
    )
    fp32 = next(c for c in data["checks"] if c["precision"] == "fp32")
    assert fp32["tolerance"]["max_abs_rel"] == 1e-4
    for o in fp32["outputs"]:
        assert o["max_abs_error"] < 1e-4 and o["passed"]


def test_validate_json_and_selection(bundle: Bundle, tmp_path: Path) -> None:
    out = _validate(
        str(bundle.path),
        "--backend",
        "onnxruntime",
        "--variant",
        "fp32",
        "--json",
        tmp_path=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [(c["backend"], c["precision"]) for c in data["checks"]] == [("onnxruntime", "fp32")]


def test_golden_mismatch_fails_with_exit_1(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    other = fusion_model(src / "other.onnx", seed=3)  # not the model the golden outputs came from
    feeds = random_feeds(4)
    ref = fusion_reference(feeds)
    np.savez(src / "golden.npz", **feeds, **{k: v.astype(np.float32) for k, v in ref.items()})
    b = write_bundle(
        tmp_path / "bad.medfuse",
        spec=fusion_spec(),
        variants={"fp32": VariantSource(other)},
        files={"golden.npz": src / "golden.npz"},
        provenance=Provenance(),
    )
    out = _validate(str(b.path), tmp_path=tmp_path)
    assert out.returncode == 1
    assert "validation FAILED" in out.stderr and "max abs error" in out.stderr
    assert "Traceback" not in out.stderr


def test_damaged_variant_fails_cleanly(bundle: Bundle, tmp_path: Path) -> None:
    _flip_byte(bundle.path / "model.fp32.onnx")
    out = _validate(str(bundle.path), "--variant", "fp32", tmp_path=tmp_path)
    assert out.returncode == 1
    assert "IntegrityError" in out.stderr and "model.fp32.onnx" in out.stderr
    assert "Traceback" not in out.stderr


def test_damaged_golden_fails_cleanly(bundle: Bundle, tmp_path: Path) -> None:
    _flip_byte(bundle.path / "golden.npz")
    out = _validate(str(bundle.path), tmp_path=tmp_path)
    assert out.returncode == 1
    assert "golden.npz" in out.stderr and "Traceback" not in out.stderr


def test_unknown_variant_is_usage_error(bundle: Bundle, tmp_path: Path) -> None:
    out = _validate(str(bundle.path), "--variant", "int4", tmp_path=tmp_path)
    assert out.returncode == 2
    assert "int4" in out.stderr


def test_validate_bundle_api(bundle: Bundle) -> None:
    report = validate_bundle(bundle, variants=["fp32"])
    assert report.passed and len(report.checks) == 1
    check = report.checks[0]
    assert check.backend == "onnxruntime" and check.providers == ("CPUExecutionProvider",)
    diag = next(o for o in check.outputs if o.name == "diagnosis")
    assert diag.top1_agreement == 1.0


def test_tolerances_by_precision() -> None:
    assert tolerance_for("fp32").max_abs_rel == 1e-4
    assert tolerance_for("fp16").max_abs_rel == 1e-2
    int8 = tolerance_for("int8-cpu")
    assert int8.max_abs_rel > 1e-2 and int8.min_top1 is not None
