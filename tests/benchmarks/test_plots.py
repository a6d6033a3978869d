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


def _figure_facts(report: object) -> tuple[object, object, object]:
    from medfuse.benchmarks.plots import report_figure

    fig = report_figure(report)  # type: ignore[arg-type]
    fig.canvas.draw()
    ax_cdf, ax_tp = fig.axes[:2]
    return fig, ax_cdf, ax_tp


def test_one_colour_per_variant_across_panels_and_unstable_marked(make_report: MakeReport) -> None:
    from dataclasses import replace

    from matplotlib.colors import to_hex

    report = make_report()
    # Single batch: the throughput panel is bars, one per combination, in result order.
    one = [r for r in report.results if r.batch == 1]
    one[1] = replace(one[1], stability={**one[1].stability, "stable": False})
    report = replace(report, results=tuple(one))
    fig, ax_cdf, ax_tp = _figure_facts(report)
    lines = [ln for ln in ax_cdf.get_lines() if len(ln.get_xdata()) > 1]  # type: ignore[attr-defined]
    bars = list(ax_tp.patches)  # type: ignore[attr-defined]
    assert len(lines) == len(bars) == len(one)
    for r, line, bar in zip(one, lines, bars, strict=True):
        assert to_hex(line.get_color()) == to_hex(bar.get_facecolor())
        # Unstable: X markers on the curve and a hatched bar (readable without colour).
        assert (line.get_marker() == "X") is (not r.stable)
        assert bool(bar.get_hatch()) is (not r.stable)
    colours = {to_hex(line.get_color()) for line in lines}
    assert len(colours) == len({(r.backend, r.variant) for r in one})
    # The legend sits outside both panels, and the log axis has one label per tick.
    legend = fig.legends[0].get_window_extent()  # type: ignore[attr-defined]
    assert legend.x0 >= ax_tp.get_window_extent().x1  # type: ignore[attr-defined]
    labels = [t.get_text() for t in ax_cdf.get_xticklabels() if t.get_text()]  # type: ignore[attr-defined]
    assert labels and len(labels) == len(set(labels))
    assert not any("times" in t or "^" in t for t in labels)  # plain numbers, not 2×10^1


def test_several_batches_keep_the_variant_colour(make_report: MakeReport) -> None:
    from matplotlib.colors import to_hex

    from medfuse.benchmarks.plots import series_colours

    report = make_report()
    _, ax_cdf, ax_tp = _figure_facts(report)
    colours = series_colours([(r.backend, r.variant) for r in report.results])
    cdf = [ln for ln in ax_cdf.get_lines() if len(ln.get_xdata()) > 1]  # type: ignore[attr-defined]
    with_samples = [r for r in report.results if r.samples_ms]
    for r, line in zip(with_samples, cdf, strict=True):
        assert to_hex(line.get_color()) == to_hex(colours[(r.backend, r.variant)])
    tp_colours = {to_hex(ln.get_color()) for ln in ax_tp.get_lines()}  # type: ignore[attr-defined]
    assert tp_colours <= {to_hex(c) for c in colours.values()}
