"""``medfuse bench`` and ``medfuse bench compare``: the real CLI in a subprocess on a real bundle."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import medfuse
from helpers.bench_builders import make_report
from helpers.onnx_bundles import make_bundle
from medfuse.benchmarks.report import read_report, write_report


def _bundle(tmp_path: Path) -> Path:
    """The shipped reference bundle when installed, else the tiny test bundle."""
    shipped = Path(medfuse.__file__ or "").parent / "data" / "reference.medfuse"
    if (shipped / "manifest.json").is_file():
        return shipped
    return Path(make_bundle(tmp_path).path)


def _bench(*args: str, tmp_path: Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDFUSE_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", "bench", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_bench_writes_json_markdown_and_table(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    out = tmp_path / "out.json"
    md = tmp_path / "out.md"
    proc = _bench(
        str(bundle),
        "--variant",
        "fp32",
        "--backend",
        "onnxruntime",
        "--batch",
        "1,2",
        "--json",
        str(out),
        "--markdown",
        str(md),
        "--max-seconds",
        "1.5",
        "--window-ms",
        "100",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = read_report(out)
    assert [(r.backend, r.variant, r.batch) for r in report.results] == [
        ("onnxruntime", "fp32", 1),
        ("onnxruntime", "fp32", 2),
    ]
    for r in report.results:
        assert r.latency_ms.count > 0 and r.latency_ms.min <= r.latency_ms.p50 <= r.latency_ms.max
        assert r.throughput_per_s > 0
        assert set(r.breakdown_ms) == {"input_copy", "compute", "postprocess"}
        assert r.stability["windows_used"] >= 1 and "stable" in r.stability
        assert r.memory["rss_steady_mib"] > 0
        assert r.variant_sha256 == report.fingerprint["bundle"]["variants"]["fp32"]
    text = out.read_text()
    assert socket.gethostname() not in text
    assert json.loads(text)["fingerprint"]["host_id"]
    assert "| onnxruntime | fp32 | 2 |" in md.read_text()
    assert "onnxruntime" in proc.stdout and "p50 ms" in proc.stdout


def test_bench_end_to_end_on_studies(tmp_path: Path) -> None:
    from medfuse.synthetic import generate_studies

    studies = tmp_path / "studies"
    generate_studies(studies, 1, seed=3)
    bundle = _bundle(tmp_path)
    out = tmp_path / "e2e.json"
    proc = _bench(
        str(bundle),
        "--variant",
        "fp32",
        "--backend",
        "onnxruntime",
        "--studies",
        str(studies),
        "--json",
        str(out),
        "--max-seconds",
        "1",
        "--window-ms",
        "50",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = read_report(out)
    e2e = [r for r in report.results if r.mode == "end_to_end"]
    assert len(e2e) == 1 and e2e[0].unit == "study"
    assert {"discovery", "read", "preprocess", "inference"} <= set(e2e[0].breakdown_ms)
    assert e2e[0].throughput_per_s > 0
    assert str(studies) not in out.read_text()  # no input paths in results


def test_bench_usage_errors(tmp_path: Path) -> None:
    proc = _bench("a", "b", tmp_path=tmp_path)
    assert proc.returncode == 2 and "one BUNDLE" in proc.stderr
    proc = _bench("--batch", "0", tmp_path=tmp_path)
    assert proc.returncode == 2 and "--batch" in proc.stderr
    bundle = _bundle(tmp_path)
    proc = _bench(str(bundle), "--variant", "fp64", tmp_path=tmp_path)
    assert proc.returncode == 2 and "fp64" in proc.stderr


def test_compare_refuses_different_bundles_unless_allowed(tmp_path: Path) -> None:
    a = write_report(
        make_report("Jetson AGX Orin", fp32_sha="ab" * 32), tmp_path / "a.json"
    )
    b = write_report(make_report("NVIDIA H100", fp32_sha="ef" * 32), tmp_path / "b.json")
    proc = _bench("compare", str(a), str(b), tmp_path=tmp_path)
    assert proc.returncode == 2 and "different bundles" in proc.stderr
    md, png, js = tmp_path / "c.md", tmp_path / "c.png", tmp_path / "c.json"
    proc = _bench(
        "compare",
        str(a),
        str(b),
        "--allow-different-bundles",
        "--markdown",
        str(md),
        "--json",
        str(js),
        *(("--plot", str(png)) if importlib.util.find_spec("matplotlib") else ()),
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Jetson AGX Orin" in proc.stdout and "NVIDIA H100" in proc.stdout
    assert len(json.loads(js.read_text())["rows"]) == 8
    assert md.read_text().count("| NVIDIA H100 |") == 4
    if importlib.util.find_spec("matplotlib"):
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_compare_rejects_non_result_files(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    proc = _bench("compare", str(tmp_path / "x.json"), tmp_path=tmp_path)
    assert proc.returncode == 2 and "not a medfuse bench result" in proc.stderr


@pytest.mark.parametrize("args", [["compare"]])
def test_compare_needs_files(tmp_path: Path, args: list[str]) -> None:
    proc = _bench(*args, tmp_path=tmp_path)
    assert proc.returncode == 2 and "result files" in proc.stderr
