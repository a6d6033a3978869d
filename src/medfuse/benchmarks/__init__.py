"""Per-device latency benchmarks: harness, stability windows, statistics, fingerprint, reports.

- :func:`run_benchmark` / :class:`BenchConfig` measure every backend × variant × batch of a
  bundle (``medfuse bench``); :func:`measure` is the harness underneath (warm-up, then windows
  until the last three agree within a spread, bounded in time — Triton perf_analyzer's rule).
- :class:`BenchReport` is the versioned JSON result (:func:`write_report` /
  :func:`read_report`), with :func:`markdown_table` and :func:`rich_table` views;
  :func:`compare_reports` makes the cross-device table; :mod:`~medfuse.benchmarks.plots` draws
  PNGs (matplotlib, imported only when plotting).
- :mod:`~medfuse.benchmarks.tegrastats` reads Jetson power and clocks.

Runtime tier: numpy and the runtime only; never torch or onnx.
"""

from __future__ import annotations

from medfuse.benchmarks.compare import CompareRow, bundle_identity, compare_reports
from medfuse.benchmarks.harness import HarnessConfig, Measurement, measure
from medfuse.benchmarks.report import (
    SCHEMA_VERSION,
    BenchReport,
    ComboResult,
    markdown_table,
    read_report,
    rich_table,
    write_report,
)
from medfuse.benchmarks.runner import BenchConfig, run_benchmark
from medfuse.benchmarks.stats import (
    LatencyStats,
    StabilityRule,
    StabilityVerdict,
    WindowSummary,
    check_stability,
    percentile,
)
from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id, hash_hostname

__all__ = [
    "SCHEMA_VERSION",
    "BenchConfig",
    "BenchReport",
    "ComboResult",
    "CompareRow",
    "HarnessConfig",
    "LatencyStats",
    "Measurement",
    "StabilityRule",
    "StabilityVerdict",
    "WindowSummary",
    "bundle_identity",
    "check_stability",
    "compare_reports",
    "device_fingerprint",
    "fingerprint_id",
    "hash_hostname",
    "markdown_table",
    "measure",
    "percentile",
    "read_report",
    "rich_table",
    "run_benchmark",
    "write_report",
]
