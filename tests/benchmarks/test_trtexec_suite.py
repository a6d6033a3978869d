"""``benchmarks/session_overhead.py`` on a machine without TensorRT: the ONNX Runtime rows as
before, and the TensorRT part recorded as skipped with the reason the backend selection gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.onnx_bundles import make_bundle
from medfuse.runtime.backends.select import available_backends

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "session_overhead.py"


def test_without_tensorrt_the_suite_records_why_and_keeps_the_ort_rows(tmp_path: Path) -> None:
    reason = available_backends("cuda:0")["tensorrt"]
    if reason is None:
        pytest.skip("TensorRT is usable here: tests/benchmarks/test_trtexec_gpu.py runs the suite")
    bundle = make_bundle(tmp_path)
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--bundle",
            str(bundle.path),
            "--iterations",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("session_overhead-*.json")
    doc = json.loads(path.read_text())
    (row,) = doc["results"]
    assert row["model"] == "bundle:tiny-fusion"
    assert set(row["stats"]) == {
        "ort_run",
        "ort_iobinding",
        "session_infer",
        "session_infer_unchecked",
        "session_execute",
    }
    assert doc["tensorrt"]["skipped"] == reason
    assert "not yet run on real hardware" in doc["tensorrt"]["note"]
    assert f"tensorrt: skipped: {reason}" in proc.stdout
    assert str(tmp_path) not in path.read_text()  # no local paths in the result
