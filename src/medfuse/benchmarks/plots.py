"""PNG plots of benchmark results (matplotlib, imported lazily; no display needed).

- :func:`plot_report`: latency CDF per combination (left) and throughput vs batch per
  backend / variant (right). Unstable results are drawn dashed / with hollow markers.
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

__all__ = ["plot_compare", "plot_report"]


def _figure(width: float, height: float) -> tuple[Any, Any]:
    require("matplotlib", purpose="plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    return fig, FigureCanvasAgg(fig)


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, format="png")
    return out


def plot_report(report: BenchReport, path: str | Path) -> Path:
    """Write the latency CDFs and throughput-vs-batch plot of ``report`` as a PNG.

    Raises
    ------
    MissingDependencyError
        matplotlib is not installed (``pip install 'medfuse[plots]'``).
    """
    fig, _ = _figure(12.0, 4.8)
    ax_cdf = fig.add_subplot(1, 2, 1)
    ax_tp = fig.add_subplot(1, 2, 2)
    for r in report.results:
        if not r.samples_ms:
            continue
        x = np.sort(np.asarray(r.samples_ms, dtype=np.float64))
        y = np.arange(1, x.size + 1) / x.size
        mode = " e2e/study" if r.mode == "end_to_end" else ""
        label = f"{r.backend}/{r.variant} b{r.batch}{mode}" + ("" if r.stable else " (unstable)")
        ax_cdf.step(x, y, where="post", label=label, linestyle="-" if r.stable else "--")
    ax_cdf.set_xscale("log")
    ax_cdf.set_xlabel("latency per call (ms, log)")
    ax_cdf.set_ylabel("fraction of calls")
    ax_cdf.set_title("latency distribution (CDF)")
    ax_cdf.grid(True, which="both", alpha=0.3)
    if ax_cdf.lines:
        ax_cdf.legend(fontsize="small")

    series: dict[tuple[str, str, str], list[tuple[int, float, bool]]] = {}
    for r in report.results:
        series.setdefault((r.backend, r.variant, r.mode), []).append(
            (r.batch, r.throughput_per_s, r.stable)
        )
    for (backend, variant, mode), pts in sorted(series.items()):
        pts.sort()
        batches = [p[0] for p in pts]
        line = ax_tp.plot(
            batches,
            [p[1] for p in pts],
            marker="o",
            label=f"{backend}/{variant}" + (" e2e" if mode == "end_to_end" else ""),
        )
        for b, tp, stable in pts:
            if not stable:
                ax_tp.plot(
                    [b],
                    [tp],
                    marker="o",
                    markerfacecolor="white",
                    color=line[0].get_color(),
                    markersize=9,
                )
    ax_tp.set_xlabel("batch size")
    ax_tp.set_ylabel("items / s")
    ax_tp.set_title("throughput vs batch (hollow: not stable)")
    ax_tp.grid(True, alpha=0.3)
    if ax_tp.lines:
        ax_tp.legend(fontsize="small")
    fig.suptitle(f"medfuse bench — {report.device_label}")
    return _save(fig, path)


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
