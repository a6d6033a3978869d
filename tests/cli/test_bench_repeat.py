"""``medfuse bench compare`` on repeated runs: the real CLI in a subprocess on a tiny bundle.

Two ``medfuse bench`` runs here are repeats (same machine, bundle, settings): ``compare`` adds
the repeatability verdict per combination. A file edited to another GPU is not a repeat: the
cross-device table only, and a line saying why. The exit code is 0 in every case (a report).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers.onnx_bundles import make_bundle

Doc = dict[str, Any]


def _medfuse(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDFUSE_CACHE_DIR": str(cache), "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", "bench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


@pytest.fixture(scope="module", name="runs")
def _runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two results of the same ``medfuse bench`` command, run back to back."""
    root = tmp_path_factory.mktemp("bench-repeat")
    bundle = make_bundle(root)
    out = []
    for i in range(2):
        path = root / f"run{i}.json"
        proc = _medfuse(
            str(bundle.path),
            *("--backend", "onnxruntime", "--variant", "fp32", "--batch", "1,2"),
            *("--device", "cpu", "--threads", "1", "--max-seconds", "0.5", "--window-ms", "40"),
            *("--json", str(path)),
            cache=root / "cache",
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        out.append(path)
    return out[0], out[1]


def _load(path: Path) -> Doc:
    data: Doc = json.loads(path.read_text())
    return data


def _write(doc: Doc, path: Path) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_compare_of_two_runs_here_reports_repeatability(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    js, md = tmp_path / "c.json", tmp_path / "c.md"
    proc = _medfuse(
        "compare", *map(str, runs), "--json", str(js), "--markdown", str(md), cache=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "repeatability (2 runs, same machine, bundle and settings)" in proc.stdout
    data = json.loads(js.read_text())
    assert data["not_repeats"] == []
    rows = data["repeatability"]["rows"]
    docs = [_load(p) for p in runs]
    for batch in (1, 2):
        results = [next(r for r in d["results"] if r["batch"] == batch) for d in docs]
        p50 = [r["latency_ms"]["p50"] for r in results]
        spreads = [r["stability"]["spread"] for r in results]
        stable = all(r["stability"]["stable"] for r in results)
        difference = (max(p50) - min(p50)) / min(p50)
        if None in spreads:
            expected = "unknown"
        elif difference > max(spreads):
            expected = "beyond"
        else:
            expected = "within" if stable else "unknown"
        row = next(r for r in rows if r["batch"] == batch)
        assert row["difference"] == pytest.approx(difference, rel=1e-12)
        assert row["verdict"] == expected
        assert f"onnxruntime / fp32 / batch {batch} / tensor: p50 differs by" in proc.stdout
        assert f"{expected} spread" in proc.stdout or "cannot judge" in proc.stdout
    assert f"overall: {data['repeatability']['verdict']}" in proc.stdout
    text = md.read_text()
    assert "### Repeatability" in text and "| onnxruntime | fp32 | 2 | tensor |" in text


def test_compare_with_another_gpu_gives_no_repeatability_verdict(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    other = copy.deepcopy(_load(runs[1]))
    other["fingerprint"]["device"].update({"kind": "gpu", "name": "NVIDIA H100 80GB HBM3"})
    b = _write(other, tmp_path / "h100.json")
    js, md = tmp_path / "c.json", tmp_path / "c.md"
    proc = _medfuse(
        "compare", str(runs[0]), str(b), "--json", str(js), "--markdown", str(md), cache=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "not repeats of one benchmark on one machine" in proc.stdout
    assert "repeatability (" not in proc.stdout and "### Repeatability" not in md.read_text()
    data = json.loads(js.read_text())
    assert data["repeatability"] is None
    assert any(d.startswith("device.name:") for d in data["not_repeats"])
    assert {r["device"] for r in data["rows"]} >= {"NVIDIA H100 80GB HBM3"}


def test_compare_says_when_runs_differ_beyond_their_spread(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = _load(runs[0]), copy.deepcopy(_load(runs[0]))
    # batch 1: p50 3 % apart, both runs report ±1 % -> beyond; batch 2: identical -> within
    for doc, p50, spread in ((a, 10.0, 0.01), (b, 10.3, 0.01)):
        row = next(r for r in doc["results"] if r["batch"] == 1)
        row["latency_ms"]["p50"] = p50
        row["stability"].update(spread=spread, stable=True)
    for doc in (a, b):
        row = next(r for r in doc["results"] if r["batch"] == 2)
        row["latency_ms"]["p50"] = 5.0
        row["stability"].update(spread=0.02, stable=True)
    js = tmp_path / "c.json"
    proc = _medfuse(
        "compare",
        str(_write(a, tmp_path / "a.json")),
        str(_write(b, tmp_path / "b.json")),
        "--json",
        str(js),
        cache=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        "batch 1 / tensor: p50 differs by 3.00% between runs (10 / 10.3 ms); reported spread "
        "±1.00% → beyond spread; this machine was not idle or the benchmark is not stable"
    ) in proc.stdout
    assert "batch 2 / tensor: p50 differs by 0.00% between runs" in proc.stdout
    assert "overall: beyond" in proc.stdout
    rows = json.loads(js.read_text())["repeatability"]["rows"]
    assert [(r["batch"], r["verdict"]) for r in rows] == [(1, "beyond"), (2, "within")]
