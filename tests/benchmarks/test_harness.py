"""The measurement loop on a synthetic clock: stable when steady, bounded and honest when drifting."""

from __future__ import annotations

import math

import pytest

from medfuse.benchmarks.harness import HarnessConfig, measure
from medfuse.benchmarks.stats import StabilityRule
from medfuse.errors import UsageError


class SyntheticClock:
    """A clock that only moves when a step says how long it took."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_steady_step_is_stable_after_three_windows() -> None:
    clock = SyntheticClock()

    def step() -> dict[str, float]:
        clock.t += 0.002  # 2 ms per call
        return {"compute": 1.5, "input_copy": 0.5}

    cfg = HarnessConfig(window_ms=100, max_seconds=10, warmup_ms=50, items_per_step=4)
    m = measure(step, cfg, clock=clock)
    assert m.verdict.stable and m.verdict.windows_used == 3
    assert m.latency.p50 == pytest.approx(2.0)
    assert m.latency.p99 == pytest.approx(2.0)
    assert m.throughput_per_s == pytest.approx(4 / 0.002)  # 4 items per 2 ms
    assert m.stage_ms == pytest.approx({"compute": 1.5, "input_copy": 0.5})
    assert m.warmup_steps == 25  # 50 ms of 2 ms steps
    assert m.steps_measured == 3 * 50


def test_converging_step_stabilises_later() -> None:
    clock = SyntheticClock()
    calls = [0]

    def step() -> None:
        calls[0] += 1
        # 8 ms settling to 2 ms (caches warming, clocks ramping)
        clock.t += 0.002 + 0.006 * math.exp(-calls[0] / 40)

    m = measure(
        step, HarnessConfig(window_ms=100, max_seconds=60, warmup_runs=1, warmup_ms=0), clock=clock
    )
    assert m.verdict.stable
    assert m.verdict.windows_used > 3
    assert m.latency.p50 == pytest.approx(2.0, rel=0.05)


def test_drifting_step_is_not_stable_and_bounded() -> None:
    clock = SyntheticClock()
    lat = [0.002]

    def step() -> None:
        lat[0] *= 1.01  # +1 % per call: never settles
        clock.t += lat[0]

    cfg = HarnessConfig(window_ms=100, max_seconds=2.0, rule=StabilityRule(0.05))
    m = measure(step, cfg, clock=clock)
    assert not m.verdict.stable
    assert "not stable within the 2 s bound" in m.verdict.reason
    assert m.elapsed_s <= 2.0 + lat[0]  # stops at the bound (after the step in flight)
    assert m.latency.count > 0


def test_slow_step_gets_minimum_samples_per_window() -> None:
    clock = SyntheticClock()

    def step() -> None:
        clock.t += 0.5  # slower than the window

    m = measure(
        step, HarnessConfig(window_ms=10, max_seconds=100, warmup_runs=1, warmup_ms=0), clock=clock
    )
    assert m.verdict.stable
    assert all(w.samples == 3 for w in m.windows)


def test_config_validates() -> None:
    with pytest.raises(UsageError):
        HarnessConfig(window_ms=0)
    with pytest.raises(UsageError):
        HarnessConfig(items_per_step=0)


def test_warmup_using_the_whole_bound_still_reports_stage_times() -> None:
    clock = SyntheticClock()

    def step() -> dict[str, float]:
        clock.t += 0.4  # each step 400 ms; a 1 s bound ends inside the warm-up
        return {"preprocess": 300.0, "compute": 100.0}

    m = measure(step, HarnessConfig(window_ms=100, max_seconds=1, warmup_runs=3), clock=clock)
    assert m.steps_measured == 1 and not m.verdict.stable
    assert m.stage_ms == {"preprocess": 300.0, "compute": 100.0}
    assert m.latency.p50 == pytest.approx(400.0)
