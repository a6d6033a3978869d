"""PNG plots of a report and of a comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.bench_builders import MakeReport
from medfuse.benchmarks.compare import compare_reports

pytest.importorskip("matplotlib")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_plot_is_png(tmp_path: Path, make_report: MakeReport) -> None:
    from medfuse.benchmarks.plots import plot_report

    out = plot_report(make_report(), tmp_path / "plots" / "r.png")
    assert out.read_bytes()[:8] == PNG_MAGIC and out.stat().st_size > 10_000


def test_compare_plot_is_png(tmp_path: Path, make_report: MakeReport) -> None:
    from medfuse.benchmarks.plots import plot_compare

    rows = compare_reports([make_report(), make_report("NVIDIA H100")])
    out = plot_compare(rows, tmp_path / "c.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
