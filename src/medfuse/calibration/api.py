"""``quantize_bundle``: calibrate, make INT8 / FP16 variants, gate them, write them atomically."""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle import Bundle, VariantSource, open_bundle, update_bundle
from medfuse.calibration._ort import cpu_session, run_all
from medfuse.calibration.config import QuantizeConfig
from medfuse.calibration.fp16 import convert_fp16
from medfuse.calibration.gate import GateResult, evaluate_gate
from medfuse.calibration.int8 import check_quantizable, quantize_int8
from medfuse.calibration.qdq_rules import check_qdq
from medfuse.calibration.ranges import CalibrationRanges, calibrate_ranges
from medfuse.calibration.reader import HeldoutSet, load_heldout, scan_studies
from medfuse.calibration.report import plot_scatter, plot_sensitivity, render_markdown, write_json
from medfuse.calibration.sensitivity import LayerError, layer_errors, quantized_nodes
from medfuse.errors import AccuracyGateError, BundleError, CalibrationError

__all__ = ["QuantizeResult", "VariantOutcome", "quantize_bundle"]

logger = logging.getLogger(__name__)
Arrays = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class VariantOutcome:
    """One candidate: whether it passed, its gate figures, and its file while staged."""

    precision: str
    passed: bool
    gate: GateResult
    path: Path | None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize_bundle` did.

    ``bundle`` is the bundle after the run: the variants that passed the gate (and the
    report) were added to it; it is the unchanged input when none passed.
    """

    passed: bool
    variants: Mapping[str, VariantOutcome]
    report: Mapping[str, Any]
    bundle: Bundle
    ranges: CalibrationRanges | None

    @property
    def written(self) -> tuple[str, ...]:
        """The variants that passed the gate and were added to the bundle."""
        return tuple(p for p, v in self.variants.items() if v.passed and v.path is not None)

    def raise_for_gate(self) -> None:
        """Raise :class:`AccuracyGateError` naming the variants that failed."""
        bad = {p: v.gate.failures for p, v in self.variants.items() if not v.passed}
        if bad:
            raise AccuracyGateError(
                "; ".join(f"{p}: {', '.join(f) or 'failed'}" for p, f in bad.items())
                + (
                    f" — only {', '.join(self.written)} written to the bundle"
                    if self.written
                    else " — nothing was written to the bundle"
                )
            )


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


class _Run:
    """State of one quantization run (the FP32 reference outputs, the evaluation set)."""

    def __init__(
        self, bundle: Bundle, fp32: Path, config: QuantizeConfig, heldout: HeldoutSet | None
    ) -> None:
        self.bundle, self.fp32, self.config, self.heldout = bundle, fp32, config, heldout
        golden = _golden(bundle)
        self.feeds = _concat(heldout.feeds if heldout else {}, golden)
        if not self.feeds:
            raise CalibrationError(
                "nothing to gate on: the bundle has no golden.npz and no held-out folder was "
                "given; pass heldout=DIR (--heldout)"
            )
        self.n_heldout = heldout.n if heldout else 0
        self.reference = run_all(cpu_session(fp32), self.feeds)
        self.samples = {
            k: v[: config.sensitivity_samples] for k, v in (golden or self.feeds).items()
        }

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


def _int8_tensorrt(run: _Run, ranges: CalibrationRanges, tmp: Path) -> VariantOutcome:
    cfg = run.config
    excluded: list[str] = []
    steps: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    while True:
        path = tmp / f"int8-{len(excluded)}.onnx"
        quantize_int8(run.fp32, path, ranges, cfg, nodes_to_exclude=excluded)
        qdq = check_qdq(path, excluded=[*cfg.nodes_to_exclude, *excluded])
        gate, out = run.gate(path)
        logger.info(
            "int8 gate with %d node(s) excluded: %s", len(excluded), list(gate.failures) or "passed"
        )
        if steps:
            first: dict[str, Any] = next(iter(gate.metrics["outputs"].values()), {})
            steps[-1].update(
                agreement=first.get("agreement"),
                auroc_drop=first.get("auroc_drop"),
                max_abs_drift=first.get("max_abs_drift"),
                passed=gate.passed,
                failures=list(gate.failures),
            )
        if gate.passed or not cfg.sensitivity or len(excluded) >= cfg.max_excluded:
            break
        ranked = layer_errors(run.fp32, path, run.samples)
        if not errors:
            errors = [e.to_dict() for e in ranked]
        pick = next((e for e in ranked if e.node not in excluded), None)
        if pick is None:  # nodes the ranking cannot see (e.g. feeding a graph output)
            rest = [n for n in quantized_nodes(path) if n[0] not in excluded]
            if not rest:
                break
            pick = LayerError(rest[0][0], rest[0][1], float("nan"), float("nan"))
        logger.info("gate failed; keeping node %s (%s) in float", pick.node, pick.op_type)
        excluded.append(pick.node)
        steps.append({"node": pick.node, "op_type": pick.op_type, "local_error": pick.local_error})
    failures = list(gate.failures) + [f"Q/DQ rule: {v.node} {v.rule}" for v in qdq.violations]
    passed = gate.passed and qdq.ok
    return VariantOutcome(
        "int8",
        passed,
        GateResult(passed, tuple(failures), gate.metrics),
        path,
        {
            "qdq_check": qdq.to_dict(),
            "nodes_excluded": excluded,
            "sensitivity": {"layers": errors, "steps": steps},
            "outputs": out,
        },
    )


def _int8_cpu(
    run: _Run, ranges: CalibrationRanges, tmp: Path, sensitive: Sequence[str] = ()
) -> VariantOutcome:
    """Time and gate every CPU layout; keep the fastest that passes.

    ``sensitive``: nodes the ``int8`` variant's sensitivity search kept in float. A layout that
    fails the gate as is gets a second try with those nodes in float too.
    """
    cfg = run.config
    feed1 = {k: v[:1] for k, v in run.feeds.items()}
    tried: list[dict[str, Any]] = []
    best: tuple[float, Path, GateResult, Arrays] | None = None
    last: tuple[GateResult, Arrays, Path] | None = None
    fp32_ms = _time_model(run.fp32, feed1, cfg.timing_runs)
    attempts = 0
    best_excluded: list[str] = []
    for layout in cfg.cpu_candidates:
        for excluded in ((), tuple(sensitive)) if sensitive else ((),):
            path = tmp / f"int8-cpu-{attempts}.onnx"
            attempts += 1
            quantize_int8(run.fp32, path, ranges, cfg, layout=layout, nodes_to_exclude=excluded)
            gate, out = run.gate(path)
            ms = _time_model(path, feed1, cfg.timing_runs)
            label = layout.label + (f" +{len(excluded)} float" if excluded else "")
            tried.append({"layout": label, "ms": ms, "passed": gate.passed})
            last = (gate, out, path)
            if gate.passed and (best is None or ms < best[0]):
                best = (ms, path, gate, out)
                best_excluded = list(excluded)
            if gate.passed:
                break
    if best is None:
        assert last is not None
        return VariantOutcome(
            "int8-cpu",
            False,
            last[0],
            last[2],
            {"cpu_candidates": tried, "fp32_ms": fp32_ms, "outputs": last[1]},
        )
    chosen = next(t["layout"] for t in tried if t["ms"] == best[0])
    timing = {
        "fp32_ms": round(fp32_ms, 3),
        "ms": round(best[0], 3),
        "speedup_vs_fp32": round(fp32_ms / best[0], 3),
        "batch": 1,
    }
    if best[0] >= fp32_ms:
        logger.warning(
            "int8-cpu passed the gate but ran %.1f ms vs fp32 %.1f ms here; precision='auto' "
            "will prefer fp32 on the CPU",
            best[0],
            fp32_ms,
        )
    return VariantOutcome(
        "int8-cpu",
        True,
        best[2],
        best[1],
        {
            "cpu_candidates": tried,
            "fp32_ms": fp32_ms,
            "layout": chosen,
            "nodes_excluded": best_excluded,
            "cpu_timing": timing,
            "outputs": best[3],
        },
    )


def _sensitive(outcome: VariantOutcome | None) -> tuple[str, ...]:
    """The nodes the int8 sensitivity search kept in float (none without an int8 run)."""
    return tuple(outcome.details.get("nodes_excluded") or ()) if outcome is not None else ()


def _fp16(run: _Run, tmp: Path) -> VariantOutcome:
    path = convert_fp16(run.fp32, tmp / "fp16.onnx", run.config)
    gate, out = run.gate(path)
    return VariantOutcome("fp16", gate.passed, gate, path, {"outputs": out})


def quantize_bundle(
    bundle: Bundle | str | Path,
    calib: str | Path,
    config: QuantizeConfig | None = None,
    *,
    heldout: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> QuantizeResult:
    """Make the configured INT8 / FP16 variants of a bundle's FP32 model, gate them, add them.

    Parameters
    ----------
    bundle:
        A writable bundle (directory) with an ``fp32`` variant.
    calib:
        Folder of DICOM calibration studies (read through the runtime's preprocessing).
    config:
        Options (default :class:`QuantizeConfig`).
    heldout:
        Folder of labelled held-out studies (``labels.csv`` + ``labels.key``), disjoint from
        ``calib``. Without it the gate uses the golden vectors only (no AUROC / MAE).
    progress:
        Called with a short phase description.

    Returns
    -------
    QuantizeResult
        ``passed`` when every variant passed. The variants that passed, with
        ``reports/quantization.{json,md}`` (+ PNGs, failures included), were added to the
        bundle in one atomic update; a variant that failed is never written, and when none
        passed the bundle is left exactly as it was.

    Raises
    ------
    BundleError
        No ``fp32`` variant, or a read-only bundle.
    CalibrationError
        Too few usable studies, held-out overlapping calibration, an unquantizable graph.
    """
    config = config or QuantizeConfig()
    say = progress or (lambda _msg: None)
    b = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
    if "fp32" not in b.precisions:
        raise BundleError(
            f"bundle {b.label} has no 'fp32' variant to quantize (it has: "
            f"{', '.join(b.precisions) or 'none'}); export one with `medfuse export`"
        )
    if b.read_only:
        raise BundleError(f"bundle {b.label} is a zip and read-only; unzip it first")
    fp32 = b.variant_file("fp32")
    fp32_sha = b.manifest.variants["fp32"].sha256
    if config.int8_precisions:
        check_quantizable(fp32, config)
    say("scanning calibration studies")
    studies = scan_studies(Path(calib), b.spec, limit=config.max_calib)
    if len(studies) < config.min_calib:
        raise CalibrationError(
            f"calibration set too small: {len(studies)} stud(ies) found, at least "
            f"{config.min_calib} are needed"
        )
    held = None
    if heldout is not None:
        say("preprocessing held-out studies")
        out_labels = next((o.labels for o in b.spec.outputs if o.kind == "classification"), ())
        held = load_heldout(
            Path(heldout), b.spec, calibration_keys=studies.keys, class_labels=out_labels
        )
    ranges = None
    if config.int8_precisions:
        say("calibrating")
        ranges = calibrate_ranges(fp32, fp32_sha, studies, b.spec, config)
    run = _Run(b, fp32, config, held)
    outcomes: dict[str, VariantOutcome] = {}
    with tempfile.TemporaryDirectory(prefix="medfuse-quantize-") as tmp_name:
        tmp = Path(tmp_name)
        for prec in config.int8_precisions:
            assert ranges is not None
            say(f"making {prec}")
            outcomes[prec] = (
                _int8_tensorrt(run, ranges, tmp)
                if prec == "int8"
                else _int8_cpu(run, ranges, tmp, _sensitive(outcomes.get("int8")))
            )
        if "fp16" in config.precisions:
            say("making fp16")
            outcomes["fp16"] = _fp16(run, tmp)
        report = _report(b, config, ranges, outcomes, run)
        passed = all(v.passed for v in outcomes.values())
        written = [p for p, v in outcomes.items() if v.passed and v.path is not None]
        if written:
            files = _report_files(tmp, report, outcomes, run, config)
            calib_prov = ranges.provenance() if ranges else None
            b = update_bundle(
                b,
                add_variants={
                    p: VariantSource(
                        outcomes[p].path,  # type: ignore[arg-type]  # checked in `written`
                        accuracy=_accuracy(outcomes[p]),
                        calibration=calib_prov if p.startswith("int8") else None,
                    )
                    for p in written
                },
                add_files=files,
            )
        if not passed:
            logger.warning(
                "gate failed for %s; not written to the bundle%s",
                [p for p, v in outcomes.items() if not v.passed],
                f" (written: {written})" if written else " (the bundle is unchanged)",
            )
    return QuantizeResult(passed, outcomes, report, b, ranges)


def _accuracy(v: VariantOutcome) -> dict[str, Any]:
    acc: dict[str, Any] = {"gate": "passed", **{k: v for k, v in v.gate.metrics.items()}}
    for key in ("nodes_excluded", "layout", "cpu_timing"):
        if v.details.get(key):
            acc[key] = v.details[key]
    return acc


def _report(
    b: Bundle,
    config: QuantizeConfig,
    ranges: CalibrationRanges | None,
    outcomes: Mapping[str, VariantOutcome],
    run: _Run,
) -> dict[str, Any]:
    variants: dict[str, Any] = {}
    for p, v in outcomes.items():
        entry = {
            "passed": v.passed,
            "failures": list(v.gate.failures),
            "gate": dict(v.gate.metrics),
        }
        entry.update({k: x for k, x in v.details.items() if k != "outputs"})
        if v.path is not None:
            entry["size_bytes"] = v.path.stat().st_size
        variants[p] = entry
    return {
        "model": b.spec.name,
        "fp32_size_bytes": run.fp32.stat().st_size,
        "calibration": {
            **(ranges.provenance() if ranges else {}),
            "cache_hit": bool(ranges and ranges.cache_hit),
        },
        "gate": {
            **config.gate.__dict__,
            "samples": int(next(iter(run.feeds.values())).shape[0]),
            "heldout": run.n_heldout,
        },
        "variants": variants,
    }


def _report_files(
    tmp: Path,
    report: Mapping[str, Any],
    outcomes: Mapping[str, VariantOutcome],
    run: _Run,
    config: QuantizeConfig,
) -> dict[str, Path]:
    files = {
        "reports/quantization.json": write_json(tmp / "quantization.json", report),
        "reports/quantization.md": tmp / "quantization.md",
    }
    (tmp / "quantization.md").write_text(render_markdown(report), encoding="utf-8")
    if not config.plots:
        return files
    first = run.bundle.spec.outputs[0].name
    for p, v in outcomes.items():
        outs = v.details.get("outputs")
        if outs is not None:
            png = plot_scatter(tmp / f"scatter-{p}.png", run.reference[first], outs[first], p)
            if png:
                files[f"reports/quantization-scatter-{p}.png"] = png
    layers = (
        outcomes["int8"].details.get("sensitivity", {}).get("layers")
        if "int8" in outcomes
        else None
    )
    if layers:
        png = plot_sensitivity(tmp / "sensitivity.png", layers)
        if png:
            files["reports/quantization-sensitivity.png"] = png
    return files


def raise_if_failed(result: QuantizeResult) -> None:
    """Raise :class:`AccuracyGateError` when a variant failed the gate."""
    result.raise_for_gate()
