"""``medfuse bench --all``: the overview of every variant × backend, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import medfuse
from medfuse.benchmarks.overview import OVERVIEW_KIND

_SHIPPED = Path(medfuse.__file__ or "").parent / "data" / "reference.medfuse"


def _medfuse(*args: str, tmp_path: Path, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDFUSE_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_overview_json_to_stdout_joins_gate_validation_and_speed(tmp_path: Path) -> None:
    proc = _medfuse("bench", "--all", "--quick", str(_SHIPPED), "--json", "-", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)  # stdout holds the JSON only: no table mixed in
    assert doc["kind"] == OVERVIEW_KIND
    rows = doc["rows"]
    variants = {r["variant"] for r in rows if r["backend"] == "onnxruntime"}
    assert variants == {"fp32", "fp16", "int8", "int8-cpu"}
    for r in rows:
        assert r["validated"] is True, r["validate_note"]
        assert r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["throughput_per_s"] > 0
        assert r["size_bytes"] > 0
    # The gate figures are the manifest's, not re-measured.
    int8 = next(r for r in rows if r["variant"] == "int8")
    assert int8["gate"]["gate"] == "passed" and int8["gate"]["agreement"] == 1.0
    assert abs(int8["gate"]["drift"] - 0.19675) < 1e-4
    # Exactly the row precision="auto" picks is marked, with the reason.
    picked = [r for r in rows if r["auto"]]
    assert len(picked) == 1
    assert picked[0]["variant"] == doc["auto"]["precision"]
    assert "preference" in doc["auto"]["reason"]
    assert doc["settings"]["quick"] is True


def test_overview_table_fits_80_columns_and_keeps_keys_whole(tmp_path: Path) -> None:
    md = tmp_path / "overview.md"
    proc = _medfuse(
        "bench",
        "--all",
        "--quick",
        "--variant",
        "fp32,int8-cpu",
        "--markdown",
        str(md),
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines and all(len(line) <= 80 for line in lines), max(lines, key=len)
    table = [line.split() for line in lines]
    # Keys a user types back (variant, backend) appear whole as cells.
    assert any(cells[:2] == ["int8-cpu", "onnxruntime"] for cells in table if cells)
    assert 'precision="auto" picks' in proc.stdout
    text = md.read_text()
    assert "| int8-cpu | onnxruntime |" in text and "golden vectors" in text


def test_quick_needs_all(tmp_path: Path) -> None:
    proc = _medfuse("bench", "--quick", tmp_path=tmp_path)
    assert proc.returncode == 2 and "--all" in proc.stderr


def test_run_benchmark_counts_every_measurement_for_the_eta() -> None:
    from medfuse.benchmarks import BenchConfig, run_benchmark

    calls: list[tuple[int, int, str]] = []
    config = BenchConfig(
        bundle=_SHIPPED,
        backends=("onnxruntime",),
        variants=("fp32", "fp16"),
        batches=(1, 2),
        window_ms=20,
        max_seconds=0.3,
    )
    report = run_benchmark(config, counted=lambda d, t, line: calls.append((d, t, line)))
    assert len(report.results) == 4
    assert [(d, t) for d, t, _ in calls] == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert calls[2][2] == "onnxruntime / fp16 / batch 1"
