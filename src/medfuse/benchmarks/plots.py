"""PNG plots of benchmark results (matplotlib, imported lazily; no display needed).

- :func:`plot_report`: latency CDF per combination (left) and throughput (right), one
  colour per backend / variant across both panels, the legend outside; unstable results carry
  ``X`` markers or a hatch (readable without colour).
- :func:`plot_compare`: p50 latency and throughput per device × variant as grouped bars.

Figures are drawn on the Agg canvas directly (no ``pyplot`` global state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medfuse._deps import require
from medfuse.benchmarks.compare import CompareRow
from medfuse.benchmarks.report import BenchReport

__all__ = ["PALETTE", "plot_compare", "plot_report", "report_figure", "series_colours"]


def _figure(width: float, height: float) -> tuple[Any, Any]:
    require("matplotlib", purpose="plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    return fig, FigureCanvasAgg(fig)


def _save(fig: Any, path: str | Path, *, tight: bool = True) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(out, format="png")
    return out


# Okabe & Ito's colour-blind-safe palette (black last); one colour per backend / variant.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_BATCH_STYLES = ("-", "--", ":", "-.")
UNSTABLE_MARKER = "X"
UNSTABLE_HATCH = "///"


def series_colours(keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """One colour per ``(backend, variant)``, in first-seen order, the same in every panel."""
    ordered = list(dict.fromkeys(keys))
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(ordered)}


def _log_ms_axis(ax: Any) -> None:
    """A log axis labelled 1, 2, 5, 10, 20, 50 ... (plain numbers, one label per tick)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_report(report: BenchReport, path: str | Path) -> Path:
    """Write :func:`report_figure` of ``report`` as a PNG.

    Raises
    ------
    MissingDependencyError
        matplotlib is not installed (``pip install 'medfuse[plots]'``).
    """
    return _save(report_figure(report), path, tight=False)


def report_figure(report: BenchReport) -> Any:
    """The latency CDFs and the throughput panel of ``report`` (a matplotlib ``Figure``).

    Each backend / variant has one colour in both panels (a colour-blind-safe palette); batch
    sizes differ by line style; results that did not stabilise are marked with ``X`` markers
    (CDF, throughput points) or a hatch (throughput bars), so they read without colour. The
    legend sits outside the panels. With one batch size the throughput panel is a bar per
    combination; with several, throughput against batch size.

    Raises
    ------
    MissingDependencyError
        matplotlib is not installed (``pip install 'medfuse[plots]'``).
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, _ = _figure(12.5, 4.8)
    ax_cdf = fig.add_subplot(1, 2, 1)
    ax_tp = fig.add_subplot(1, 2, 2)
    results = list(report.results)
    colours = series_colours([(r.backend, r.variant) for r in results])
    batches = sorted({r.batch for r in results})
    style: dict[int, Any] = {
        b: _BATCH_STYLES[i % len(_BATCH_STYLES)] for i, b in enumerate(batches)
    }
    for r in results:
        if not r.samples_ms:
            continue
        x = np.sort(np.asarray(r.samples_ms, dtype=np.float64))
        y = np.arange(1, x.size + 1) / x.size
        ax_cdf.step(
            x,
            y,
            where="post",
            color=colours[(r.backend, r.variant)],
            linestyle=style[r.batch] if r.mode == "tensor" else "-.",
            marker=None if r.stable else UNSTABLE_MARKER,
            markevery=max(1, x.size // 8),
            markersize=7,
        )
    _log_ms_axis(ax_cdf)
    ax_cdf.set_xlabel("latency per call (ms, log scale)")
    ax_cdf.set_ylabel("fraction of calls")
    ax_cdf.set_title("latency distribution (CDF)")
    ax_cdf.grid(True, which="major", alpha=0.3)

    unstable = any(not r.stable for r in results)
    if len(batches) <= 1:
        labels = [
            f"{r.variant}\n{r.backend}" + (" e2e" if r.mode == "end_to_end" else "")
            for r in results
        ]
        ax_tp.bar(
            range(len(results)),
            [r.throughput_per_s for r in results],
            color=[colours[(r.backend, r.variant)] for r in results],
            hatch=[None if r.stable else UNSTABLE_HATCH for r in results],
            edgecolor="black",
            linewidth=0.6,
        )
        ax_tp.set_xticks(range(len(results)))
        ax_tp.set_xticklabels(labels, fontsize="small")
        ax_tp.set_title(f"throughput at batch {batches[0] if batches else '-'}")
    else:
        series: dict[tuple[str, str, str], list[tuple[int, float, bool]]] = {}
        for r in results:
            series.setdefault((r.backend, r.variant, r.mode), []).append(
                (r.batch, r.throughput_per_s, r.stable)
            )
        for (backend, variant, mode), pts in series.items():
            pts.sort()
            colour = colours[(backend, variant)]
            ax_tp.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                color=colour,
                marker="o",
                linestyle="-" if mode == "tensor" else "-.",
            )
            bad = [p for p in pts if not p[2]]
            if bad:
                ax_tp.plot(
                    [p[0] for p in bad],
                    [p[1] for p in bad],
                    linestyle="none",
                    marker=UNSTABLE_MARKER,
                    color=colour,
                    markeredgecolor="black",
                    markersize=11,
                )
        ax_tp.set_xscale("log", base=2)
        ax_tp.set_xticks(batches)
        ax_tp.set_xticklabels([str(b) for b in batches])
        ax_tp.set_xlabel("batch size")
        ax_tp.set_title("throughput vs batch size")
    ax_tp.set_ylabel("items / s")
    ax_tp.grid(True, axis="y", alpha=0.3)

    handles: list[Any] = [
        Patch(facecolor=c, edgecolor="black", label=f"{b} / {v}") for (b, v), c in colours.items()
    ]
    if len(batches) > 1:
        handles += [
            Line2D([], [], color="grey", linestyle=style[b], label=f"batch {b}") for b in batches
        ]
    if any(r.mode == "end_to_end" for r in results):
        handles.append(Line2D([], [], color="grey", linestyle="-.", label="end to end (per study)"))
    if unstable:
        handles.append(
            Line2D([], [], color="black", marker=UNSTABLE_MARKER, linestyle="none",
                   label="did not stabilise")
        )  # fmt: skip
        if len(batches) <= 1:
            handles.append(
                Patch(facecolor="white", edgecolor="black", hatch=UNSTABLE_HATCH,
                      label="did not stabilise (bar)")
            )  # fmt: skip
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.80, 0.5), frameon=False)
    fig.suptitle(f"medfuse bench — {report.device_label}")
    fig.tight_layout(rect=(0.0, 0.0, 0.80, 1.0))
    return fig


def plot_compare(rows: Sequence[CompareRow], path: str | Path) -> Path:
    """Write grouped bars of p50 latency and throughput per device × variant as a PNG."""
    fig, _ = _figure(12.0, 4.8)
    ax_lat = fig.add_subplot(1, 2, 1)
    ax_tp = fig.add_subplot(1, 2, 2)
    keys = sorted({(r.backend, r.variant, r.batch, r.mode) for r in rows})
    devices = list(dict.fromkeys(r.device for r in rows))
    width = 0.8 / max(len(devices), 1)
    index = np.arange(len(keys))
    for i, device in enumerate(devices):
        by_key = {(r.backend, r.variant, r.batch, r.mode): r for r in rows if r.device == device}
        p50 = [by_key[k].p50_ms if k in by_key else np.nan for k in keys]
        tp = [by_key[k].throughput_per_s if k in by_key else np.nan for k in keys]
        ax_lat.bar(index + i * width, p50, width, label=device)
        ax_tp.bar(index + i * width, tp, width, label=device)
    names = [f"{b}/{v} b{n}" + (" e2e" if m == "end_to_end" else "") for b, v, n, m in keys]
    for ax, title in ((ax_lat, "p50 latency (ms)"), (ax_tp, "throughput (items/s)")):
        ax.set_xticks(index + width * (len(devices) - 1) / 2)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize="small")
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        if devices:
            ax.legend(fontsize="small")
    fig.suptitle("medfuse bench compare")
    return _save(fig, path)
