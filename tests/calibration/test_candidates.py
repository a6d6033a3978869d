"""How int8_cpu picks among the CPU layouts that passed the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medfuse.calibration.candidates import TIME_TIE, _pick
from medfuse.calibration.gate import GateResult


def _passing(ms: float, agreement: float, drift: float, label: str) -> Any:
    metrics = {"outputs": {"diagnosis": {"agreement": agreement, "mean_abs_drift": drift}}}
    return (ms, Path(label), GateResult(True, (), metrics), {}, [], label)


def test_cpu_layout_pick_prefers_accuracy_among_equally_fast() -> None:
    assert TIME_TIE == 0.05
    fast = _passing(10.0, 0.99, 0.01, "fast")
    tied_better = _passing(10.4, 1.0, 0.02, "tied-better")
    tied_best = _passing(10.2, 1.0, 0.01, "tied-best")
    slow_best = _passing(11.0, 1.0, 0.0, "slow")
    assert _pick([fast, tied_better, slow_best])[-1] == "tied-better"
    assert _pick([fast, tied_better, tied_best, slow_best])[-1] == "tied-best"  # then drift
    assert _pick([fast, slow_best])[-1] == "fast"  # 10 % slower is not a tie
