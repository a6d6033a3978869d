"""``benchmarks/repeatability.py``: the suite script end to end on a tiny bundle (slow: two runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.onnx_bundles import make_bundle

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "repeatability.py"


@pytest.mark.slow
def test_suite_runs_bench_twice_and_writes_the_check(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--bundle", str(bundle.path), "--backend", "onnxruntime", "--variant", "fp32"),
            *("--batch", "1", "--max-seconds", "0.5", "--window-ms", "40", "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("repeatability-*.json")
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == "repeatability" and doc["command"][:2] == ["medfuse", "bench"]
    assert [r["run"] for r in doc["runs"]] == [1, 2]
    results = [r["report"]["results"][0] for r in doc["runs"]]
    assert all("samples_ms" not in r for r in results)
    p50 = [r["latency_ms"]["p50"] for r in results]
    (row,) = doc["check"]["rows"]
    assert row["p50_ms"] == p50
    assert row["difference"] == pytest.approx((max(p50) - min(p50)) / min(p50), rel=1e-12)
    assert doc["check"]["verdict"] in {"within", "beyond", "unknown"}
    assert f"overall: {doc['check']['verdict']}" in proc.stdout
    assert str(bundle.path) not in path.read_text()  # the command records no local paths
