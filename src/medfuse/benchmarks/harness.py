"""The measurement loop: warm-up, then windows until the stability rule holds or time runs out.

:func:`measure` calls a *step* (one unit of work: an inference at some batch size, or a pass
over a study set) repeatedly. After a warm-up it measures in windows of ``window_ms`` (each at
least ``min_samples_per_window`` steps); after every window it applies the
:class:`~medfuse.benchmarks.stats.StabilityRule` to the windows so far and stops as soon as the
last ``rule.windows`` windows agree. ``max_seconds`` bounds warm-up plus measurement: when it
runs out first, the result says so (``verdict.stable`` is false, with the reason) and the
statistics come from the last windows measured — reported, never silently passed off as stable.

Statistics (percentiles, throughput, per-stage means) are computed over the samples of the
windows the verdict looked at, as perf_analyzer reports its stable windows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from medfuse.benchmarks.stats import (
    LatencyStats,
    StabilityRule,
    StabilityVerdict,
    WindowSummary,
    check_stability,
)
from medfuse.errors import UsageError

__all__ = ["HarnessConfig", "Measurement", "StepFn", "measure"]

logger = logging.getLogger(__name__)

StepFn = Callable[[], Mapping[str, float] | None]
"""One unit of work; may return its stage times in ms (e.g. ``{"compute": 1.2}``)."""


@dataclass(frozen=True)
class HarnessConfig:
    """How :func:`measure` measures.

    Parameters
    ----------
    window_ms:
        Length of one measurement window.
    max_seconds:
        Upper bound on warm-up plus measurement for one combination.
    warmup_runs, warmup_ms:
        Warm-up lasts at least ``warmup_runs`` steps and at least ``warmup_ms``.
    min_samples_per_window:
        A window ends only once it holds this many steps (slow models get longer windows).
    rule:
        The stability rule.
    items_per_step:
        Items (inferences, studies) one step processes; throughput counts items.
    max_samples_kept:
        Latency samples kept in the result for plots (quantiles of the measured ones beyond it).

    Raises
    ------
    UsageError
        A non-positive window or time bound, or fewer than one item / sample per step.
    """

    window_ms: float = 1000.0
    max_seconds: float = 30.0
    warmup_runs: int = 3
    warmup_ms: float = 200.0
    min_samples_per_window: int = 3
    rule: StabilityRule = field(default_factory=StabilityRule)
    items_per_step: int = 1
    max_samples_kept: int = 1000

    def __post_init__(self) -> None:
        if self.window_ms <= 0 or self.max_seconds <= 0:
            raise UsageError(
                f"window_ms and max_seconds must be positive (e.g. 1000 ms and 30 s), got "
                f"{self.window_ms} ms and {self.max_seconds} s"
            )
        if self.items_per_step < 1 or self.min_samples_per_window < 1:
            raise UsageError(
                f"items_per_step and min_samples_per_window must be at least 1, got "
                f"{self.items_per_step} and {self.min_samples_per_window}"
            )


@dataclass(frozen=True)
class Measurement:
    """What :func:`measure` found.

    ``latency`` is per step (ms); ``throughput_per_s`` counts items; ``stage_ms`` holds the
    mean of each stage a step reported, per step; ``samples_ms`` the kept latency samples.
    """

    latency: LatencyStats
    throughput_per_s: float
    stage_ms: dict[str, float]
    verdict: StabilityVerdict
    windows: tuple[WindowSummary, ...]
    samples_ms: tuple[float, ...]
    steps_measured: int
    measured_s: float
    warmup_steps: int
    elapsed_s: float


@dataclass
class _Window:
    latencies: list[float] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0

    def summary(self, items_per_step: int) -> WindowSummary:
        n = len(self.latencies)
        rate = n * items_per_step / self.duration_s if self.duration_s > 0 else 0.0
        return WindowSummary(float(np.median(self.latencies)), rate, n, self.duration_s)


def measure(
    step: StepFn,
    config: HarnessConfig | None = None,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Warm up, then measure ``step`` in windows until stable or out of time.

    Parameters
    ----------
    step:
        The work to time; called with no arguments.
    config:
        Windows, bounds and the stability rule (defaults: 1 s windows, 30 s bound, ±5 %).
    clock:
        Seconds, monotonic (``time.perf_counter``; tests pass a synthetic clock).

    Returns
    -------
    Measurement
        Statistics over the last ``rule.windows`` windows and the stability verdict.
    """
    cfg = config or HarnessConfig()
    start = clock()
    deadline = start + cfg.max_seconds
    warmup_steps = 0
    while warmup_steps < cfg.warmup_runs or (clock() - start) * 1e3 < cfg.warmup_ms:
        step()
        warmup_steps += 1
        if clock() >= deadline:
            break
    windows: list[_Window] = []
    summaries: list[WindowSummary] = []
    verdict = check_stability(summaries, cfg.rule)
    window_s = cfg.window_ms / 1e3
    while clock() < deadline:
        win = _Window()
        w0 = clock()
        while True:
            t0 = clock()
            stages = step()
            t1 = clock()
            win.latencies.append((t1 - t0) * 1e3)
            if stages:
                for k, v in stages.items():
                    win.stages[k] = win.stages.get(k, 0.0) + float(v)
            if t1 >= deadline:
                break
            if t1 - w0 >= window_s and len(win.latencies) >= cfg.min_samples_per_window:
                break
        win.duration_s = clock() - w0
        windows.append(win)
        summaries.append(win.summary(cfg.items_per_step))
        verdict = check_stability(summaries, cfg.rule)
        logger.debug(
            "window %d: median %.3f ms, %.1f items/s (%s)",
            len(windows),
            summaries[-1].median_ms,
            summaries[-1].throughput_per_s,
            verdict.reason,
        )
        if verdict.stable:
            break
    elapsed = clock() - start
    if not windows:  # the warm-up used all the time: measure one step so there is a number
        t0 = clock()
        stages = step()
        t1 = clock()
        windows.append(
            _Window([(t1 - t0) * 1e3], {k: float(v) for k, v in (stages or {}).items()}, t1 - t0)
        )
        summaries.append(windows[-1].summary(cfg.items_per_step))
    if not verdict.stable:
        verdict = StabilityVerdict(
            False,
            len(windows),
            verdict.spread,
            cfg.rule,
            f"not stable within the {cfg.max_seconds:g} s bound: {verdict.reason}",
        )
    return _summarise(windows[-cfg.rule.windows :], summaries, verdict, cfg, warmup_steps, elapsed)


def _summarise(
    used: list[_Window],
    summaries: list[WindowSummary],
    verdict: StabilityVerdict,
    cfg: HarnessConfig,
    warmup_steps: int,
    elapsed: float,
) -> Measurement:
    """Statistics over the windows the verdict looked at."""
    lat = np.concatenate([np.asarray(w.latencies, dtype=np.float64) for w in used])
    steps = int(lat.size)
    duration = sum(w.duration_s for w in used)
    stage_totals: dict[str, float] = {}
    for w in used:
        for k, v in w.stages.items():
            stage_totals[k] = stage_totals.get(k, 0.0) + v
    kept = lat
    if lat.size > cfg.max_samples_kept:
        kept = np.quantile(lat, np.linspace(0.0, 1.0, cfg.max_samples_kept))
    return Measurement(
        latency=LatencyStats.from_samples(lat),
        throughput_per_s=steps * cfg.items_per_step / duration if duration > 0 else 0.0,
        stage_ms={k: v / steps for k, v in stage_totals.items()},
        verdict=verdict,
        windows=tuple(summaries),
        samples_ms=tuple(float(v) for v in np.sort(kept)),
        steps_measured=steps,
        measured_s=duration,
        warmup_steps=warmup_steps,
        elapsed_s=elapsed,
    )
