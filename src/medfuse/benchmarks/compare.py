"""Compare benchmark results across devices: one row per device × backend × variant × batch.

Results only compare when they measured the same model: the bundle identity is the sha256 of
its ``fp32`` variant (the reference graph every other variant derives from), else the model
name and version. :func:`compare_reports` refuses results of different bundles unless told
otherwise (``allow_different_bundles``, CLI ``--allow-different-bundles``).

Results of one bundle from one machine with the same settings are repeats rather than devices:
:mod:`~medfuse.benchmarks.repeat` checks that they agree within their reported spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medfuse.benchmarks.report import BenchReport
from medfuse.errors import UsageError

__all__ = [
    "CompareRow",
    "bundle_identity",
    "compare_markdown",
    "compare_reports",
    "compare_rich_table",
]


@dataclass(frozen=True)
class CompareRow:
    """One line of the cross-device table."""

    device: str
    backend: str
    variant: str
    batch: int
    mode: str
    p50_ms: float
    p99_ms: float
    throughput_per_s: float
    energy_mj: float | None
    stable: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "backend": self.backend,
            "variant": self.variant,
            "batch": self.batch,
            "mode": self.mode,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "throughput_per_s": self.throughput_per_s,
            "energy_mj": self.energy_mj,
            "stable": self.stable,
        }


def bundle_identity(report: BenchReport) -> str:
    """``fp32:<sha256>`` of the measured bundle, else ``model:<name>@<version>``."""
    facts = report.fingerprint.get("bundle") or {}
    sha = (facts.get("variants") or {}).get("fp32")
    if sha:
        return f"fp32:{sha}"
    return f"model:{facts.get('model_name')}@{facts.get('model_version')}"


def compare_reports(
    reports: Sequence[BenchReport],
    labels: Sequence[str] | None = None,
    *,
    allow_different_bundles: bool = False,
) -> list[CompareRow]:
    """Rows for a cross-device table, sorted by variant, mode, batch, then p50.

    Parameters
    ----------
    reports:
        Results of ``medfuse bench`` (at least one).
    labels:
        Device labels per report (default: each report's device name and power mode; a
        label shared by different machines gets the first 8 digits of the hashed host id,
        so no figure of one machine reads as another's; a repeated label of one machine
        gets ``#2``, ``#3``…).
    allow_different_bundles:
        Compare results of different bundles anyway.

    Raises
    ------
    UsageError
        No reports, or reports of different bundles without ``allow_different_bundles``.
    """
    if not reports:
        raise UsageError("compare needs at least one bench result file")
    ids = [bundle_identity(r) for r in reports]
    if len(set(ids)) > 1 and not allow_different_bundles:
        listing = "; ".join(
            f"#{i + 1}: {v[:24]}…" if len(v) > 24 else f"#{i + 1}: {v}" for i, v in enumerate(ids)
        )
        raise UsageError(
            f"the results measured different bundles ({listing}); numbers of different models "
            "do not compare. Re-run them on one bundle, or pass --allow-different-bundles"
        )
    names = list(labels) if labels is not None else _labels(reports)
    rows = [
        CompareRow(
            device=name,
            backend=res.backend,
            variant=res.variant,
            batch=res.batch,
            mode=res.mode,
            p50_ms=res.latency_ms.p50,
            p99_ms=res.latency_ms.p99,
            throughput_per_s=res.throughput_per_s,
            energy_mj=res.energy_mj,
            stable=res.stable,
        )
        for name, report in zip(names, reports, strict=True)
        for res in report.results
    ]
    rows.sort(key=lambda r: (r.variant, r.mode, r.batch, r.p50_ms))
    return rows


def _labels(reports: Sequence[BenchReport]) -> list[str]:
    """Device labels; one shared by different hosts names the (hashed) host, repeats get #N."""
    base = [r.device_label for r in reports]
    hosts = [r.fingerprint.get("host_id") for r in reports]
    seen: dict[str, int] = {}
    out = []
    for label, host in zip(base, hosts, strict=True):
        if host and len({h for b, h in zip(base, hosts, strict=True) if b == label}) > 1:
            label = f"{label} [host {str(host)[:8]}]"
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _num(v: float | None, digits: int = 3) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.{digits}f}" if abs(v) < 100 else f"{v:,.1f}"


HEADERS = (
    "device",
    "backend",
    "variant",
    "batch",
    "mode",
    "p50 ms",
    "p99 ms",
    "throughput/s",
    "mJ/item",
    "stable",
)


def _cells(r: CompareRow) -> list[str]:
    return [
        r.device,
        r.backend,
        r.variant,
        str(r.batch),
        "end-to-end" if r.mode == "end_to_end" else "tensor",
        _num(r.p50_ms),
        _num(r.p99_ms),
        _num(r.throughput_per_s, 1),
        _num(r.energy_mj, 2),
        "yes" if r.stable else "NO",
    ]


def compare_markdown(rows: Sequence[CompareRow]) -> str:
    """The cross-device table as Markdown (``NO`` marks results that were not stable)."""
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|"
        + "|".join(
            "---:" if h.endswith(("ms", "/s", "item")) or h == "batch" else "---" for h in HEADERS
        )
        + "|",
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def compare_rich_table(rows: Sequence[CompareRow]) -> Any:
    """The cross-device table as a :class:`rich.table.Table`."""
    from rich.table import Table

    table = Table(title="medfuse bench compare", show_header=True)
    for h in HEADERS:
        table.add_column(h, justify="right" if h.endswith(("ms", "/s", "item")) else "left")
    for r in rows:
        table.add_row(*_cells(r), style=None if r.stable else "red")
    return table
