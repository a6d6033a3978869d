"""JSON schema round trip, validation, Markdown and rich tables."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from helpers.bench_builders import MakeReport
from medfuse.benchmarks.report import (
    SCHEMA_VERSION,
    BenchReport,
    markdown_table,
    read_report,
    rich_table,
    write_report,
)
from medfuse.errors import UsageError


def test_json_round_trip(tmp_path: Path, make_report: MakeReport) -> None:
    report = make_report()
    path = write_report(report, tmp_path / "sub" / "r.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    first = data["results"][0]
    for key in (
        "backend",
        "variant",
        "batch",
        "latency_ms",
        "throughput_per_s",
        "breakdown_ms",
        "stability",
        "memory",
    ):
        assert key in first
    assert set(first["latency_ms"]) >= {"p50", "p90", "p95", "p99", "mean", "std", "min", "max"}
    assert set(first["stability"]) >= {"stable", "windows_used", "spread"}
    assert "fingerprint" in data
    assert read_report(path) == report


def test_rejects_other_schema_versions_and_other_json(
    tmp_path: Path, make_report: MakeReport
) -> None:
    data = make_report().to_dict()
    data["schema_version"] = 99
    (tmp_path / "v99.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match="schema_version 99"):
        read_report(tmp_path / "v99.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(UsageError, match="not a medfuse bench result"):
        read_report(tmp_path / "other.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UsageError, match="not JSON"):
        read_report(tmp_path / "bad.json")
    data = make_report().to_dict()
    del data["results"][0]["latency_ms"]
    with pytest.raises(UsageError, match="latency_ms"):
        BenchReport.from_dict(data)


def test_non_finite_numbers_become_null(tmp_path: Path, make_report: MakeReport) -> None:
    report = make_report()
    r0 = report.results[0]
    bad = type(report)(
        fingerprint=report.fingerprint,
        results=(
            type(r0)(**{**r0.__dict__, "stability": {**r0.stability, "spread": float("inf")}}),
        ),
    )
    text = write_report(bad, tmp_path / "r.json").read_text()
    assert "Infinity" not in text and json.loads(text)["results"][0]["stability"]["spread"] is None


def test_markdown_table(make_report: MakeReport) -> None:
    md = markdown_table(make_report())
    lines = md.splitlines()
    header = next(ln for ln in lines if ln.startswith("| backend"))
    assert "p50 ms" in header and "p99 ms" in header and "throughput/s" in header
    rows = [ln for ln in lines if ln.startswith("| onnxruntime") or ln.startswith("| tensorrt")]
    assert len(rows) == 4
    assert "NO (9 w" in rows[2]  # the unstable int8 row is marked
    assert all(r.count("|") == header.count("|") for r in rows)
    assert "Stability rule" in md and "skipped tensorrt / *: no engine" in md


def test_rich_table_renders(make_report: MakeReport) -> None:
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=200).print(rich_table(make_report()))
    out = buf.getvalue()
    assert "onnxruntime" in out and "NO" in out and "Jetson AGX Orin" in out
