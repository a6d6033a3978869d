"""Cross-device comparison: refuses different bundles unless allowed."""

from __future__ import annotations

import pytest

from helpers.bench_builders import MakeReport
from medfuse.benchmarks.compare import bundle_identity, compare_markdown, compare_reports
from medfuse.errors import UsageError


def test_same_bundle_rows(make_report: MakeReport) -> None:
    a = make_report("Jetson AGX Orin", power_mode="MAXN")
    b = make_report("NVIDIA H100")
    rows = compare_reports([a, b])
    assert len(rows) == 8
    assert {r.device for r in rows} == {"Jetson AGX Orin (MAXN)", "NVIDIA H100"}
    keys = [(r.variant, r.mode, r.batch, r.p50_ms) for r in rows]
    assert keys == sorted(keys)
    trt = [r for r in rows if r.backend == "tensorrt"]
    assert all(r.energy_mj is not None for r in trt)
    md = compare_markdown(rows)
    assert md.count("\n") == 2 + 8 and "| device |" in md and "NO" in md


def test_refuses_different_bundles(make_report: MakeReport) -> None:
    a = make_report(fp32_sha="ab" * 32)
    b = make_report("Other", fp32_sha="ef" * 32)
    with pytest.raises(UsageError, match=r"different bundles.*--allow-different-bundles"):
        compare_reports([a, b])
    assert len(compare_reports([a, b], allow_different_bundles=True)) == 8


def test_identity_falls_back_to_model_name(make_report: MakeReport) -> None:
    r = make_report()
    r.fingerprint["bundle"]["variants"] = {}
    assert bundle_identity(r) == "model:ref@1"


def test_repeated_device_labels_are_numbered(make_report: MakeReport) -> None:
    rows = compare_reports([make_report(), make_report()])
    assert {r.device for r in rows} == {"Jetson AGX Orin", "Jetson AGX Orin #2"}
