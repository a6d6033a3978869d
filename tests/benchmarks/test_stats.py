"""Percentiles against numpy's reference, latency summaries, and the stability rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfuse.benchmarks.stats import (
    LatencyStats,
    StabilityRule,
    WindowSummary,
    check_stability,
    percentile,
)
from medfuse.errors import UsageError


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 99.9, 100])
@pytest.mark.parametrize("n", [1, 2, 7, 10, 101, 1000])
def test_percentile_matches_numpy_linear(q: float, n: int) -> None:
    data = np.random.default_rng(n).lognormal(0.0, 0.6, n)
    assert percentile(data, q) == pytest.approx(float(np.percentile(data, q)), rel=1e-12)


def test_percentile_known_values() -> None:
    # 1..10: rank h = 9 * q / 100 → p50 = 5.5, p90 = 9.1, p99 = 9.91 (hand-computed)
    data = list(range(10, 0, -1))
    assert percentile(data, 50) == pytest.approx(5.5)
    assert percentile(data, 90) == pytest.approx(9.1)
    assert percentile(data, 99) == pytest.approx(9.91)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=200),
    st.floats(0.0, 100.0),
)
def test_percentile_property_vs_numpy(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(
        float(np.percentile(values, q)), rel=1e-9, abs=1e-9
    )


def test_percentile_rejects_empty_and_bad_q() -> None:
    with pytest.raises(UsageError, match="empty"):
        percentile([], 50)
    with pytest.raises(UsageError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_latency_stats_match_numpy() -> None:
    data = np.random.default_rng(3).gamma(2.0, 1.5, 5000)
    s = LatencyStats.from_samples(data)
    for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert getattr(s, name) == pytest.approx(float(np.percentile(data, q)))
    assert s.mean == pytest.approx(float(np.mean(data)))
    assert s.std == pytest.approx(float(np.std(data)))
    assert (s.min, s.max, s.count) == (float(data.min()), float(data.max()), 5000)
    assert LatencyStats.from_dict(s.to_dict()) == s


def _windows(medians: list[float]) -> list[WindowSummary]:
    return [WindowSummary(m, 1000.0 / m, 10, 0.1) for m in medians]


def test_converging_series_is_stable_after_six_windows() -> None:
    medians = [10.0, 8.0, 6.0, 5.2, 5.05, 5.0, 5.0]
    rule = StabilityRule(spread=0.05, windows=3)
    verdicts = [check_stability(_windows(medians[: i + 1]), rule) for i in range(len(medians))]
    first = next(i + 1 for i, v in enumerate(verdicts) if v.stable)
    assert first == 6
    # windows 4..6 = 5.2, 5.05, 5.0: latency spread |5.2 - mean| / mean (hand-computed)
    mean = (5.2 + 5.05 + 5.0) / 3
    lat_spread = (5.2 - mean) / mean
    tps = [1000 / 5.2, 1000 / 5.05, 1000 / 5.0]
    tp_mean = sum(tps) / 3
    tp_spread = max(abs(t - tp_mean) for t in tps) / tp_mean
    assert verdicts[5].spread == pytest.approx(max(lat_spread, tp_spread))
    assert not verdicts[4].stable and verdicts[4].spread == pytest.approx(
        (6.0 - (6.0 + 5.2 + 5.05) / 3) / ((6.0 + 5.2 + 5.05) / 3), rel=0.2
    )


def test_drifting_series_never_stable() -> None:
    medians = [5.0 * 1.08**i for i in range(30)]  # +8 % per window
    rule = StabilityRule(spread=0.05)
    assert not any(check_stability(_windows(medians[: i + 1]), rule).stable for i in range(30))


def test_too_few_windows_is_not_stable() -> None:
    v = check_stability(_windows([5.0, 5.0]), StabilityRule())
    assert not v.stable and v.spread is None and v.windows_used == 2


def test_rule_validates() -> None:
    with pytest.raises(UsageError):
        StabilityRule(spread=0.0)
    with pytest.raises(UsageError):
        StabilityRule(windows=1)
    assert "±5%" in StabilityRule().describe()
    assert math.isclose(StabilityRule().spread, 0.05)
