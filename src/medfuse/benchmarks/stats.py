"""Latency statistics and the stability rule for measurement windows.

Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7, numpy's
default ``method="linear"``): for sorted samples ``x[0..n-1]`` the ``q``-th percentile sits at
rank ``h = (n - 1) * q / 100`` and is ``x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)])``.

The stability rule follows Triton's ``perf_analyzer``: measurement goes on window after window;
it is *stable* when, over the last ``windows`` windows (default 3), both the windows' median
latency and their throughput each lie within ``±spread`` (default 5 %) of those windows' mean.
The spread reported is the largest relative deviation seen, for latency or throughput.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medfuse.errors import UsageError

__all__ = [
    "PERCENTILES",
    "LatencyStats",
    "StabilityRule",
    "StabilityVerdict",
    "WindowSummary",
    "check_stability",
    "percentile",
    "relative_spread",
]

PERCENTILES = (50.0, 90.0, 95.0, 99.0)


def percentile(samples: ArrayLike, q: float) -> float:
    """The ``q``-th percentile (0–100) of ``samples`` by linear interpolation (type 7).

    Raises
    ------
    UsageError
        ``samples`` is empty or ``q`` is outside 0..100.
    """
    x: NDArray[np.float64] = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    if x.size == 0:
        raise UsageError("percentile of an empty sample set; measure at least one sample")
    if not 0.0 <= q <= 100.0:
        raise UsageError(f"percentile q must be within 0..100 (e.g. 50 for the median), got {q}")
    h = (x.size - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, x.size - 1)
    return float(x[lo] + (h - lo) * (x[hi] - x[lo]))


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples in milliseconds (``std`` is the population deviation)."""

    p50: float
    p90: float
    p95: float
    p99: float
    mean: float
    std: float
    min: float
    max: float
    count: int

    @classmethod
    def from_samples(cls, samples_ms: ArrayLike) -> LatencyStats:
        """Compute the summary of ``samples_ms``.

        Raises
        ------
        UsageError
            ``samples_ms`` is empty.
        """
        x = np.asarray(samples_ms, dtype=np.float64).ravel()
        if x.size == 0:
            raise UsageError("latency statistics need at least one sample; measure longer")
        p50, p90, p95, p99 = (percentile(x, q) for q in PERCENTILES)
        return cls(
            p50=p50,
            p90=p90,
            p95=p95,
            p99=p99,
            mean=float(x.mean()),
            std=float(x.std()),
            min=float(x.min()),
            max=float(x.max()),
            count=int(x.size),
        )

    def scaled(self, factor: float) -> LatencyStats:
        """Every statistic times ``factor`` (e.g. per pass → per study)."""
        f = float(factor)
        return LatencyStats(
            self.p50 * f,
            self.p90 * f,
            self.p95 * f,
            self.p99 * f,
            self.mean * f,
            self.std * f,
            self.min * f,
            self.max * f,
            self.count,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "p50": self.p50,
            "p90": self.p90,
            "p95": self.p95,
            "p99": self.p99,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LatencyStats:
        return cls(
            **{k: float(d[k]) for k in ("p50", "p90", "p95", "p99", "mean", "std", "min", "max")},
            count=int(d.get("count", 0)),
        )


@dataclass(frozen=True)
class StabilityRule:
    """When measurement stops: the last ``windows`` windows agree within ``±spread``.

    Parameters
    ----------
    spread:
        Largest allowed relative deviation from the windows' mean (0.05 = ±5 %).
    windows:
        How many consecutive windows must agree (perf_analyzer uses 3).

    Raises
    ------
    UsageError
        ``spread`` outside (0, 1) or fewer than 2 ``windows``.
    """

    spread: float = 0.05
    windows: int = 3

    def __post_init__(self) -> None:
        if not 0.0 < self.spread < 1.0:
            raise UsageError(
                f"stability spread must be within (0, 1) (0.05 = ±5 %), got {self.spread}"
            )
        if self.windows < 2:
            raise UsageError(
                f"stability needs at least 2 windows to compare (perf_analyzer uses 3), got "
                f"{self.windows}"
            )

    def describe(self) -> str:
        return (
            f"last {self.windows} windows' median latency and throughput within "
            f"±{self.spread * 100:g}% of their mean"
        )


@dataclass(frozen=True)
class WindowSummary:
    """One measurement window: its median latency and its throughput (items per second)."""

    median_ms: float
    throughput_per_s: float
    samples: int
    duration_s: float


@dataclass(frozen=True)
class StabilityVerdict:
    """Whether the measurement met the rule, with the evidence."""

    stable: bool
    windows_used: int
    spread: float | None
    rule: StabilityRule
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "stable": self.stable,
            "windows_used": self.windows_used,
            "spread": self.spread,
            "threshold": self.rule.spread,
            "windows_required": self.rule.windows,
            "rule": self.rule.describe(),
            "reason": self.reason,
        }


def relative_spread(values: Sequence[float]) -> float:
    """Largest ``|v - mean| / mean`` over ``values`` (``inf`` when the mean is not positive)."""
    arr = np.asarray(values, dtype=np.float64)
    mean = float(arr.mean())
    if mean <= 0.0 or not math.isfinite(mean):
        return math.inf
    return float(np.max(np.abs(arr - mean)) / mean)


def check_stability(windows: Sequence[WindowSummary], rule: StabilityRule) -> StabilityVerdict:
    """Apply ``rule`` to the windows measured so far (oldest first).

    Returns
    -------
    StabilityVerdict
        ``stable`` when the last ``rule.windows`` windows agree; ``spread`` is the larger of the
        latency and throughput spreads over those windows (``None`` with too few windows).
    """
    n = len(windows)
    if n < rule.windows:
        return StabilityVerdict(False, n, None, rule, f"only {n} of {rule.windows} windows")
    last = windows[-rule.windows :]
    spread = max(
        relative_spread([w.median_ms for w in last]),
        relative_spread([w.throughput_per_s for w in last]),
    )
    stable = spread <= rule.spread
    reason = (
        f"last {rule.windows} windows within ±{spread * 100:.2f}%"
        if stable
        else f"last {rule.windows} windows spread ±{spread * 100:.2f}% > ±{rule.spread * 100:g}%"
    )
    return StabilityVerdict(stable, n, spread, rule, reason)
