"""The candidates of a quantization run: INT8 for TensorRT, INT8 layouts for the CPU, FP16.

Each candidate is written to a temporary file, gated against FP32 (:class:`CandidateRun`) and,
when it fails, searched: the most sensitive node is kept in float, step by step
(:func:`_search`). :func:`medfuse.calibration.api.quantize_bundle` drives them.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle import Bundle
from medfuse.calibration._ort import cpu_session, run_all
from medfuse.calibration.config import CpuCandidate, QuantizeConfig
from medfuse.calibration.fp16 import convert_fp16
from medfuse.calibration.gate import GateResult, at_chance, evaluate_gate
from medfuse.calibration.int8 import TENSORRT, quantize_int8
from medfuse.calibration.qdq_rules import check_qdq, non_residual_adds
from medfuse.calibration.ranges import CalibrationRanges
from medfuse.calibration.reader import HeldoutSet
from medfuse.calibration.sensitivity import LayerError, layer_errors, quantized_nodes
from medfuse.errors import CalibrationError

__all__ = [
    "CandidateRun",
    "VariantOutcome",
    "fp16_candidate",
    "int8_cpu",
    "int8_tensorrt",
    "sensitive_nodes",
]

logger = logging.getLogger(__name__)
Arrays = dict[str, NDArray[Any]]

#: A failing CPU layout gets a sensitivity search only when it runs at least this much faster
#: (relative) than the fastest passing one.
SEARCH_MIN_GAIN = 0.10
#: Passing CPU layouts within this relative time of the fastest count as equally fast; of
#: those the most accurate wins (top-1 agreement, then mean drift), so timing noise does not
#: decide between layouts.
TIME_TIE = 0.05

_Passing = tuple[float, Path, GateResult, Arrays, list[str], str]


def _first_output(gate: GateResult) -> dict[str, Any]:
    """The gate figures of the model's first output (the diagnosis)."""
    first: dict[str, Any] = next(iter(gate.metrics["outputs"].values()), {})
    return first


def _accuracy_key(gate: GateResult) -> tuple[float, float]:
    first = _first_output(gate)
    return (-float(first.get("agreement", 1.0)), float(first.get("mean_abs_drift", 0.0)))


def _pick(passing: Sequence[_Passing]) -> _Passing:
    """The most accurate of the passing layouts that are within :data:`TIME_TIE` of the fastest."""
    fastest = min(c[0] for c in passing)
    tied = [c for c in passing if c[0] <= fastest * (1 + TIME_TIE)]
    return min(tied, key=lambda c: (*_accuracy_key(c[2]), c[0]))


@dataclass(frozen=True)
class VariantOutcome:
    """One candidate: whether it passed, its gate figures, and its file while staged."""

    precision: str
    passed: bool
    gate: GateResult
    path: Path | None
    details: Mapping[str, Any] = field(default_factory=dict)


def _golden(bundle: Bundle) -> Arrays:
    if "golden.npz" not in bundle.manifest.artifacts:
        return {}
    with np.load(bundle.file("golden.npz")) as z:
        return {i.name: np.ascontiguousarray(z[i.name]) for i in bundle.spec.inputs if i.name in z}


def _concat(a: Arrays, b: Arrays) -> Arrays:
    if not a:
        return b
    if not b:
        return a
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _time_model(path: Path, feed: Arrays, runs: int) -> float:
    sess = cpu_session(path)
    sess.run(None, feed)
    times = []
    for _ in range(max(1, runs)):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1000.0)
    return float(statistics.median(times))


def _paired_ms(a: Path, b: Path, feed: Arrays, runs: int, rounds: int = 3) -> tuple[float, float]:
    """Median latency of models ``a`` and ``b``, timed in turns (``rounds`` of each)."""
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        ta.append(_time_model(a, feed, runs))
        tb.append(_time_model(b, feed, runs))
    return float(statistics.median(ta)), float(statistics.median(tb))


class CandidateRun:
    """State of one quantization run (the FP32 reference outputs, the evaluation set)."""

    def __init__(
        self,
        bundle: Bundle,
        fp32: Path,
        config: QuantizeConfig,
        heldout: HeldoutSet | None,
        golden: Arrays | None = None,
    ) -> None:
        """``golden``: the golden input rows to gate on (default: the bundle's ``golden.npz``);
        they are stacked after the held-out rows."""
        self.bundle, self.fp32, self.config, self.heldout = bundle, fp32, config, heldout
        golden = _golden(bundle) if golden is None else golden
        self.feeds = _concat(heldout.feeds if heldout else {}, golden)
        if not self.feeds:
            raise CalibrationError(
                "nothing to gate on: the bundle has no golden.npz and no held-out folder was "
                "given; pass heldout=DIR (--heldout)"
            )
        self.n_heldout = heldout.n if heldout else 0
        self.reference = run_all(cpu_session(fp32), self.feeds)
        self.float_adds = tuple(non_residual_adds(fp32))
        self.samples = {
            k: v[: config.sensitivity_samples] for k, v in (golden or self.feeds).items()
        }

    def quantize(
        self,
        ranges: CalibrationRanges,
        out: Path,
        layout: CpuCandidate,
        nodes_to_exclude: Sequence[str] = (),
    ) -> Path:
        """:func:`~medfuse.calibration.int8.quantize_int8` of this run's FP32 model."""
        return quantize_int8(
            self.fp32,
            out,
            ranges,
            self.config,
            layout=layout,
            nodes_to_exclude=nodes_to_exclude,
            float_adds=self.float_adds,
        )

    def gate(self, path: Path) -> tuple[GateResult, Arrays]:
        try:
            out = run_all(cpu_session(path), self.feeds)
        except Exception as exc:
            raise CalibrationError(
                f"a candidate variant does not run in ONNX Runtime ({exc})"
            ) from exc
        h = self.heldout
        res = evaluate_gate(
            self.bundle.spec,
            self.reference,
            out,
            self.config.gate,
            diagnosis=h.diagnosis if h else None,
            severity=h.severity if h else None,
            labelled=self.n_heldout if h is not None and h.diagnosis is not None else 0,
        )
        return res, out


@dataclass
class _Search:
    """Where a sensitivity search ended: the last candidate, its gate, and what it kept float."""

    path: Path
    gate: GateResult
    outputs: Arrays
    excluded: list[str]
    steps: list[dict[str, Any]]
    layers: list[dict[str, Any]]


def _search(
    run: CandidateRun,
    ranges: CalibrationRanges,
    tmp: Path,
    layout: CpuCandidate,
    tag: str,
    start: Sequence[str] = (),
) -> _Search:
    """Quantize with ``layout``; while the gate fails, keep the most sensitive node in float.

    Step by step (per-node error of the quantized vs FP32 activations on the golden samples),
    until the gate passes, ``max_excluded`` nodes are float, or nothing is left to try.
    """
    cfg = run.config
    excluded = list(start)
    steps: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []
    while True:
        path = tmp / f"{tag}-{len(excluded)}.onnx"
        run.quantize(ranges, path, layout, excluded)
        gate, out = run.gate(path)
        logger.info(
            "%s gate with %d node(s) in float: %s",
            tag,
            len(excluded),
            list(gate.failures) or "passed",
        )
        if steps:
            first = _first_output(gate)
            steps[-1].update(
                agreement=first.get("agreement"),
                auroc_drop=first.get("auroc_drop"),
                max_abs_drift=first.get("max_abs_drift"),
                passed=gate.passed,
                failures=list(gate.failures),
            )
        if gate.passed or not cfg.sensitivity or len(excluded) >= cfg.max_excluded:
            return _Search(path, gate, out, excluded, steps, layers)
        if at_chance(gate):
            logger.warning(
                "FP32 is at chance on the held-out set; no sensitivity search (it cannot help)"
            )
            return _Search(path, gate, out, excluded, steps, layers)
        ranked = layer_errors(run.fp32, path, run.samples)
        if not layers:
            layers = [e.to_dict() for e in ranked]
        pick = next((e for e in ranked if e.node not in excluded), None)
        if pick is None:  # nodes the ranking cannot see (e.g. feeding a graph output)
            rest = [n for n in quantized_nodes(path) if n[0] not in excluded]
            if not rest:
                return _Search(path, gate, out, excluded, steps, layers)
            pick = LayerError(rest[0][0], rest[0][1], float("nan"), float("nan"))
        logger.info("gate failed; keeping node %s (%s) in float", pick.node, pick.op_type)
        excluded.append(pick.node)
        steps.append({"node": pick.node, "op_type": pick.op_type, "local_error": pick.local_error})


def int8_tensorrt(run: CandidateRun, ranges: CalibrationRanges, tmp: Path) -> VariantOutcome:
    found = _search(run, ranges, tmp, TENSORRT, "int8")
    qdq = check_qdq(found.path, excluded=[*run.config.nodes_to_exclude, *found.excluded])
    failures = list(found.gate.failures) + [f"Q/DQ rule: {v.node} {v.rule}" for v in qdq.violations]
    passed = found.gate.passed and qdq.ok
    return VariantOutcome(
        "int8",
        passed,
        GateResult(passed, tuple(failures), found.gate.metrics),
        found.path,
        {
            "qdq_check": qdq.to_dict(),
            "nodes_excluded": found.excluded,
            "sensitivity": {"layers": found.layers, "steps": found.steps},
            "outputs": found.outputs,
        },
    )


def int8_cpu(
    run: CandidateRun, ranges: CalibrationRanges, tmp: Path, sensitive: Sequence[str] = ()
) -> VariantOutcome:
    """Time and gate every CPU layout; keep the fastest that passes (within :data:`TIME_TIE`
    of it, the most accurate).

    A layout that fails the gate as is gets a second try with ``sensitive`` (the nodes the
    ``int8`` variant's search kept in float) in float too. When the fastest layout still fails
    and is clearly faster than every passing one (by :data:`SEARCH_MIN_GAIN`; less is within
    the timing noise of a few runs), a sensitivity search of its own runs on it.
    """
    cfg = run.config
    feed1 = {k: v[:1] for k, v in run.feeds.items()}
    tried: list[dict[str, Any]] = []
    # (ms, path, gate, outputs, nodes in float, label) of each passing candidate
    passing: list[_Passing] = []
    failing: list[tuple[float, CpuCandidate]] = []
    last: tuple[GateResult, Arrays, Path] | None = None
    fp32_ms = _time_model(run.fp32, feed1, cfg.timing_runs)
    attempts = 0

    def attempt(
        layout: CpuCandidate,
        path: Path,
        excluded: Sequence[str],
        gate: GateResult,
        out: Arrays,
        how: str = "",
    ) -> bool:
        nonlocal last
        ms = _time_model(path, feed1, cfg.timing_runs)
        label = layout.label + (f" +{len(excluded)} float" if excluded else "") + how
        first = _first_output(gate)
        tried.append(
            {"layout": label, "ms": ms, "passed": gate.passed, "agreement": first.get("agreement")}
        )
        last = (gate, out, path)
        if gate.passed:
            passing.append((ms, path, gate, out, list(excluded), label))
        return gate.passed

    # QuantizeConfig refuses a config where none is left
    layouts = [c for c in cfg.cpu_candidates if c.quantized_ops(cfg.op_types_to_quantize)]
    for layout in layouts:
        for excluded in ((), tuple(sensitive)) if sensitive else ((),):
            path = tmp / f"int8-cpu-{attempts}.onnx"
            attempts += 1
            run.quantize(ranges, path, layout, excluded)
            gate, out = run.gate(path)
            if attempt(layout, path, excluded, gate, out):
                break
            if not excluded:
                failing.append((tried[-1]["ms"], layout))
    best_ms = min((c[0] for c in passing), default=float("inf"))
    fastest = min(failing, key=lambda f: f[0], default=None)
    chance = last is not None and at_chance(last[0])
    if (
        cfg.sensitivity
        and not chance
        and fastest is not None
        and fastest[0] * (1 + SEARCH_MIN_GAIN) < best_ms
    ):
        found = _search(run, ranges, tmp, fastest[1], "int8-cpu-search", start=sensitive)
        attempt(fastest[1], found.path, found.excluded, found.gate, found.outputs, " (search)")
    if not passing:
        assert last is not None
        return VariantOutcome(
            "int8-cpu",
            False,
            last[0],
            last[2],
            {"cpu_candidates": tried, "fp32_ms": fp32_ms, "outputs": last[1]},
        )
    _ms, path, gate, out, kept_float, chosen = _pick(passing)
    # the recorded speed-up comes from fp32 and the winner timed in turns, not from timings
    # minutes apart (a busy machine in between made a slower variant look faster)
    fp32_ms, ms = _paired_ms(run.fp32, path, feed1, cfg.timing_runs)
    timing = {
        "fp32_ms": round(fp32_ms, 3),
        "ms": round(ms, 3),
        "speedup_vs_fp32": round(fp32_ms / ms, 3),
        "batch": 1,
    }
    if ms >= fp32_ms:
        logger.warning(
            "int8-cpu passed the gate but ran %.1f ms vs fp32 %.1f ms here; precision='auto' "
            "will prefer fp32 on the CPU",
            ms,
            fp32_ms,
        )
    return VariantOutcome(
        "int8-cpu",
        True,
        gate,
        path,
        {
            "cpu_candidates": tried,
            "fp32_ms": fp32_ms,
            "layout": chosen,
            "nodes_excluded": kept_float,
            "cpu_timing": timing,
            "outputs": out,
        },
    )


def sensitive_nodes(outcome: VariantOutcome | None) -> tuple[str, ...]:
    """The nodes the int8 sensitivity search kept in float (none without an int8 run)."""
    return tuple(outcome.details.get("nodes_excluded") or ()) if outcome is not None else ()


def fp16_candidate(run: CandidateRun, tmp: Path) -> VariantOutcome:
    path = convert_fp16(run.fp32, tmp / "fp16.onnx", run.config)
    gate, out = run.gate(path)
    return VariantOutcome("fp16", gate.passed, gate, path, {"outputs": out})
