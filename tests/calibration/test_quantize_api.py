"""quantize_bundle end to end on a real ONNX fusion model and synthetic DICOM studies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from helpers.calib_models import fusion_bundle
from medfuse.bundle import open_bundle
from medfuse.calibration import GateConfig, QuantizeConfig, check_qdq, quantize_bundle
from medfuse.calibration.config import CpuCandidate
from medfuse.calibration.reader import scan_studies
from medfuse.calibration.report import render_markdown
from medfuse.errors import AccuracyGateError, BundleError, CalibrationError, UsageError
from medfuse.export.lint import dequantize_input_problems
from medfuse.models import model_spec

LENIENT = GateConfig(min_agreement=0.75, max_auroc_drop=1.0)
STRICT = GateConfig(min_agreement=1.0, max_auroc_drop=1.0, max_logit_drift=0.02)


def _int8_config(tmp_path: Path, **overrides: Any) -> QuantizeConfig:
    """An INT8-only, min-max, one-timing-run, no-plot config cached under ``tmp_path``."""
    options: dict[str, Any] = {
        "precisions": ("int8",),
        "calibrate_method": "minmax",
        "gate": LENIENT,
        "cache_dir": tmp_path / "c",
        "timing_runs": 1,
        "plots": False,
        **overrides,
    }
    return QuantizeConfig(**options)


def _golden_close(bundle_path: Path, precision: str, atol: float) -> None:
    b = open_bundle(bundle_path)
    with np.load(b.file("golden.npz")) as z:
        feeds = {i.name: z[i.name] for i in b.spec.inputs}
        ref = [z[o.name] for o in b.spec.outputs]
    sess = ort.InferenceSession(str(b.variant_file(precision)), providers=["CPUExecutionProvider"])
    for got, want in zip(sess.run(None, feeds), ref, strict=True):
        np.testing.assert_allclose(got, want, atol=atol * max(1.0, float(np.abs(want).max())))


@pytest.fixture(scope="module")
def quantized(
    tmp_path_factory: pytest.TempPathFactory, studies: tuple[Path, Path]
) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("q")
    b = fusion_bundle(root)
    cfg = QuantizeConfig(
        target="both",
        calibrate_method="minmax",
        gate=LENIENT,
        cache_dir=root / "cache",
        timing_runs=1,
    )
    result = quantize_bundle(b, studies[0], cfg, heldout=studies[1])
    return b.path, result


def test_variants_written_with_provenance(quantized: tuple[Path, object]) -> None:
    path, result = quantized
    assert result.passed  # type: ignore[attr-defined]
    m = open_bundle(path).manifest
    assert {"fp32", "int8", "int8-cpu", "fp16"} <= set(m.variants)
    cal = m.variants["int8"].calibration
    assert cal is not None and cal["method"] == "minmax" and cal["studies"] == 10
    assert len(cal["set_sha256"]) == 64
    assert m.variants["int8"].accuracy["gate"] == "passed"
    assert "reports/quantization.json" in m.artifacts and "reports/quantization.md" in m.artifacts
    report = json.loads((path / "reports/quantization.json").read_text())
    assert [t["layout"] for t in report["variants"]["int8-cpu"]["cpu_candidates"]]
    diag = report["variants"]["int8"]["gate"]["outputs"]["diagnosis"]
    assert diag["disagreements"] == round((1 - diag["agreement"]) * diag["n"])
    md = (path / "reports/quantization.md").read_text()
    assert "| flipped (max FP32 margin) |" in md


def test_int8_passes_tensorrt_rules(quantized: tuple[Path, object]) -> None:
    path, _ = quantized
    report = check_qdq(open_bundle(path).variant_file("int8"))
    assert report.ok, report.violations
    assert report.quantize_nodes > 0
    # biases stay float in the TensorRT layout: no DequantizeLinear of an INT32 tensor
    model = onnx.load(str(open_bundle(path).variant_file("int8")))
    assert not dequantize_input_problems(model)
    convs = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2]
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert convs and all(producers.get(n.input[2]) != "DequantizeLinear" for n in convs)


@pytest.mark.parametrize(("precision", "atol"), [("int8", 0.1), ("int8-cpu", 0.3), ("fp16", 0.01)])
def test_variants_close_to_fp32_on_golden(
    quantized: tuple[Path, object], precision: str, atol: float
) -> None:
    _golden_close(quantized[0], precision, atol)


def test_range_cache_reused_without_reading_dicom(
    tmp_path: Path, studies: tuple[Path, Path]
) -> None:
    b = fusion_bundle(tmp_path)
    cfg = QuantizeConfig(
        precisions=("int8",), calibrate_method="minmax", gate=LENIENT, cache_dir=tmp_path / "c"
    )
    first = quantize_bundle(b, studies[0], cfg)
    assert (
        first.ranges is not None and not first.ranges.cache_hit and first.ranges.studies_read == 10
    )
    cfg2 = _int8_config(tmp_path, target="cpu", plots=True)
    second = quantize_bundle(b.path, studies[0], cfg2)
    assert second.ranges is not None and second.ranges.cache_hit
    assert second.ranges.studies_read == 0
    assert second.ranges.set_hash == first.ranges.set_hash


def test_set_hash_stable_and_content_free(tmp_path: Path, studies: tuple[Path, Path]) -> None:
    from medfuse.calibration.reader import DicomCalibrationReader

    spec = model_spec("reference")
    hashes = []
    for limit in (10, 10, 9):
        reader = DicomCalibrationReader(scan_studies(studies[0], spec, limit=limit), spec)
        list(reader)
        hashes.append(reader.set_hash)
    assert hashes[0] == hashes[1] != hashes[2]
    labels = (studies[0] / "labels.csv").read_text()
    keys = [line.split(",")[0] for line in labels.splitlines()[1:]]
    assert all(k not in hashes[0] for k in keys)


def test_too_small_calibration_set(tmp_path: Path, studies: tuple[Path, Path]) -> None:
    b = fusion_bundle(tmp_path)
    with pytest.raises(CalibrationError, match=r"5 stud\(ies\) found, at least 8"):
        quantize_bundle(
            b, studies[1], QuantizeConfig(precisions=("int8",), cache_dir=tmp_path / "c")
        )


def test_overlapping_heldout_refused(tmp_path: Path, studies: tuple[Path, Path]) -> None:
    b = fusion_bundle(tmp_path)
    with pytest.raises(CalibrationError, match="also in the calibration set"):
        quantize_bundle(b, studies[0], QuantizeConfig(precisions=("fp16",)), heldout=studies[0])


def test_bundle_without_fp32(tmp_path: Path, studies: tuple[Path, Path]) -> None:
    b = fusion_bundle(tmp_path)
    shutil.copy(b.variant_file("fp32"), tmp_path / "m.onnx")
    from medfuse.bundle import VariantSource, update_bundle

    b = update_bundle(
        b, add_variants={"fp16": VariantSource(tmp_path / "m.onnx")}, remove_variants=["fp32"]
    )
    with pytest.raises(BundleError, match="no 'fp32' variant"):
        quantize_bundle(b, studies[0])


def test_opset_below_13_refused(tmp_path: Path, studies: tuple[Path, Path]) -> None:
    b = fusion_bundle(tmp_path, opset=12)
    with pytest.raises(CalibrationError, match="opset 12"):
        quantize_bundle(b, studies[0], QuantizeConfig(precisions=("int8",)))


def test_sensitivity_exclusion_makes_strict_gate_pass(
    tmp_path: Path, studies: tuple[Path, Path]
) -> None:
    b = fusion_bundle(tmp_path, sensitive=True)
    before = (b.path / "manifest.json").read_bytes()
    no_search = _int8_config(tmp_path, gate=STRICT, sensitivity=False, timing_runs=5)
    failed = quantize_bundle(b, studies[0], no_search)
    assert not failed.passed
    assert (b.path / "manifest.json").read_bytes() == before
    search = _int8_config(tmp_path, gate=STRICT, max_excluded=12, timing_runs=5, plots=True)
    result = quantize_bundle(b.path, studies[0], search)
    assert result.passed, result.report
    steps = result.report["variants"]["int8"]["sensitivity"]["steps"]
    assert steps and not steps[0]["passed"] and steps[-1]["passed"]
    excluded = open_bundle(b.path).manifest.variants["int8"].accuracy["nodes_excluded"]
    assert list(excluded) == [s["node"] for s in steps]
    assert check_qdq(open_bundle(b.path).variant_file("int8"), excluded=excluded).ok


def test_only_passing_variants_are_written(
    tmp_path: Path, studies: tuple[Path, Path], quantized: tuple[Path, object]
) -> None:
    # A drift limit between what fp16 and int8 drift (taken from the lenient run above, same
    # model, inputs and cached ranges) passes fp16 and fails int8.
    report = quantized[1].report  # type: ignore[attr-defined]
    drift = {
        p: max(o["max_abs_drift"] for o in report["variants"][p]["gate"]["outputs"].values())
        for p in ("int8", "fp16")
    }
    assert drift["fp16"] * 4 < drift["int8"], drift
    limit = (drift["fp16"] * drift["int8"]) ** 0.5
    b = fusion_bundle(tmp_path)
    cfg = QuantizeConfig(
        target="tensorrt",
        calibrate_method="minmax",
        gate=GateConfig(min_agreement=0.75, max_auroc_drop=1.0, max_logit_drift=limit),
        sensitivity=False,
        cache_dir=tmp_path / "cache",
        plots=False,
    )
    result = quantize_bundle(b, studies[0], cfg, heldout=studies[1])
    assert not result.passed and result.written == ("fp16",)
    m = open_bundle(b.path).manifest
    assert set(m.variants) == {"fp32", "fp16"}
    saved = json.loads((b.path / "reports/quantization.json").read_text())
    assert saved["variants"]["int8"]["passed"] is False
    assert saved["variants"]["fp16"]["passed"] is True
    with pytest.raises(AccuracyGateError, match="only fp16 written"):
        result.raise_for_gate()


def test_cpu_layouts_retry_with_the_int8_sensitive_nodes(
    tmp_path: Path, studies: tuple[Path, Path]
) -> None:
    b = fusion_bundle(tmp_path, sensitive=True)
    cfg = _int8_config(tmp_path, target="both", gate=STRICT, max_excluded=12)
    result = quantize_bundle(b, studies[0], cfg)
    assert result.passed, result.report
    excluded = list(result.report["variants"]["int8"]["nodes_excluded"])
    tried = result.report["variants"]["int8-cpu"]["cpu_candidates"]
    first, second = tried[0], tried[1]
    assert not first["passed"] and "float" not in first["layout"]
    assert second["layout"] == f"{first['layout']} +{len(excluded)} float" and second["passed"]
    acc = open_bundle(b.path).manifest.variants["int8-cpu"].accuracy
    assert list(acc["nodes_excluded"]) == excluded
    assert acc["cpu_timing"]["speedup_vs_fp32"] > 0


def test_cpu_search_runs_on_the_fastest_failing_layout(
    tmp_path: Path, studies: tuple[Path, Path]
) -> None:
    b = fusion_bundle(tmp_path, sensitive=True)
    # target cpu: no int8 run, so no sensitive nodes to borrow
    cfg = _int8_config(tmp_path, target="cpu", gate=STRICT, max_excluded=12)
    result = quantize_bundle(b, studies[0], cfg)
    tried = result.report["variants"]["int8-cpu"]["cpu_candidates"]
    plain = [t for t in tried if "(search)" not in t["layout"]]
    searched = [t for t in tried if "(search)" in t["layout"]]
    assert plain and not any(t["passed"] for t in plain), tried
    fastest = min(plain, key=lambda t: t["ms"])
    assert len(searched) == 1 and searched[0]["layout"].startswith(fastest["layout"] + " +")
    assert result.passed and searched[0]["passed"], tried
    acc = open_bundle(b.path).manifest.variants["int8-cpu"].accuracy
    assert acc["layout"] == searched[0]["layout"] and acc["nodes_excluded"]


def _dq_fed_ops(model_path: Path) -> set[str]:
    """Op types with at least one input straight from a DequantizeLinear."""
    import onnx

    proto = onnx.load(str(model_path))
    dq_out = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.op_type for n in proto.graph.node if any(i in dq_out for i in n.input)}


def test_cpu_layout_restricted_to_convolutions(tmp_path: Path, studies: tuple[Path, Path]) -> None:
    b = fusion_bundle(tmp_path)
    conv_only = CpuCandidate("QUInt8", "QInt8", op_types=("Conv", "Add"))
    cfg = _int8_config(tmp_path, target="cpu", cpu_candidates=(conv_only,))
    result = quantize_bundle(b, studies[0], cfg)
    assert result.passed, result.report
    acc = open_bundle(b.path).manifest.variants["int8-cpu"].accuracy
    assert acc["layout"] == "a=QUInt8 w=QInt8 rr=off ops=Conv,Add"
    fed = _dq_fed_ops(open_bundle(b.path).variant_file("int8-cpu"))
    assert "Conv" in fed and not fed & {"MatMul", "Gemm"}, fed


def test_cpu_layouts_quantizing_nothing_refused() -> None:
    with pytest.raises(UsageError, match="no CPU layout quantizes any of op_types_to_quantize"):
        QuantizeConfig(target="cpu", cpu_candidates=(CpuCandidate(op_types=("LSTM",)),))
    # fine when the CPU variant is not asked for
    QuantizeConfig(target="tensorrt", cpu_candidates=(CpuCandidate(op_types=("LSTM",)),))


def test_cpu_candidate_quantized_ops() -> None:
    configured = ("Conv", "Gemm", "MatMul", "Add")
    assert CpuCandidate().quantized_ops(configured) == configured
    assert CpuCandidate(op_types=("Add", "Conv")).quantized_ops(configured) == ("Conv", "Add")
    assert CpuCandidate(op_types=("LSTM",)).quantized_ops(configured) == ()


def test_chance_level_model_skips_auroc_and_search(
    tmp_path: Path, studies: tuple[Path, Path]
) -> None:
    """The random-weight fusion model is at chance on 5 labelled studies: no AUROC criterion,
    no sensitivity search even where agreement fails, and the report says so."""
    b = fusion_bundle(tmp_path, sensitive=True)
    cfg = _int8_config(
        tmp_path, gate=GateConfig(min_agreement=1.0, max_auroc_drop=0.0, max_logit_drift=1e-6)
    )
    result = quantize_bundle(b, studies[0], cfg, heldout=studies[1])
    int8 = result.report["variants"]["int8"]
    assert int8["gate"]["fp32_at_chance"]["at_chance"] is True
    assert not any("AUROC" in f for f in int8["failures"])
    assert int8["failures"] and int8["sensitivity"]["steps"] == []
    assert "FP32 is at chance" in render_markdown(result.report)
