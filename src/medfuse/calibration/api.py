"""``quantize_bundle``: calibrate, make INT8 / FP16 variants, gate them, write them atomically."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from medfuse.bundle import Bundle, VariantSource, open_bundle, update_bundle
from medfuse.calibration.candidates import (
    CandidateRun,
    VariantOutcome,
    fp16_candidate,
    int8_cpu,
    int8_tensorrt,
    sensitive_nodes,
)
from medfuse.calibration.config import QuantizeConfig
from medfuse.calibration.golden import GoldenSet, derive_tolerance, refresh_golden
from medfuse.calibration.int8 import check_quantizable
from medfuse.calibration.ranges import CalibrationRanges, calibrate_ranges
from medfuse.calibration.reader import load_heldout, scan_studies
from medfuse.calibration.report import plot_scatter, plot_sensitivity, render_markdown, write_json
from medfuse.errors import AccuracyGateError, BundleError, CalibrationError

__all__ = ["QuantizeResult", "VariantOutcome", "quantize_bundle"]

logger = logging.getLogger(__name__)
Arrays = dict[str, NDArray[Any]]


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
    say("refreshing golden vectors from the calibration studies")
    golden = refresh_golden(b, studies, fp32)
    ranges = None
    if config.int8_precisions:
        say("calibrating")
        ranges = calibrate_ranges(fp32, fp32_sha, studies, b.spec, config)
    run = CandidateRun(b, fp32, config, held, golden.inputs)
    outcomes: dict[str, VariantOutcome] = {}
    with tempfile.TemporaryDirectory(prefix="medfuse-quantize-") as tmp_name:
        tmp = Path(tmp_name)
        for prec in config.int8_precisions:
            assert ranges is not None
            say(f"making {prec}")
            outcomes[prec] = (
                int8_tensorrt(run, ranges, tmp)
                if prec == "int8"
                else int8_cpu(run, ranges, tmp, sensitive_nodes(outcomes.get("int8")))
            )
        if "fp16" in config.precisions:
            say("making fp16")
            outcomes["fp16"] = fp16_candidate(run, tmp)
        tolerances = {
            p: derive_tolerance(p, b.spec, run.reference, v.details["outputs"], golden)
            for p, v in outcomes.items()
            if v.passed and "outputs" in v.details
        }
        report = _report(b, config, ranges, outcomes, run, golden, tolerances)
        passed = all(v.passed for v in outcomes.values())
        written = [p for p, v in outcomes.items() if v.passed and v.path is not None]
        if written:
            files = _report_files(tmp, report, outcomes, run, config)
            refit = _refit_kept_variants(b, run, golden, set(written)) if golden.changed else {}
            if golden.changed:
                files["golden.npz"] = golden.write(tmp / "golden.npz")
            calib_prov = ranges.provenance() if ranges else None
            b = update_bundle(
                b,
                add_variants={
                    **refit,
                    **{
                        p: VariantSource(
                            outcomes[p].path,  # type: ignore[arg-type]  # checked in `written`
                            accuracy=_accuracy(outcomes[p]),
                            calibration=calib_prov if p.startswith("int8") else None,
                            tolerance=tolerances.get(p),
                        )
                        for p in written
                    },
                },
                add_files=files,
                golden=golden.record if golden.changed else None,
            )
        if not passed:
            logger.warning(
                "gate failed for %s; not written to the bundle%s",
                [p for p, v in outcomes.items() if not v.passed],
                f" (written: {written})" if written else " (the bundle is unchanged)",
            )
    return QuantizeResult(passed, outcomes, report, b, ranges)


def _refit_kept_variants(
    b: Bundle, run: CandidateRun, golden: GoldenSet, made: set[str]
) -> dict[str, VariantSource]:
    """New tolerances for the quantized variants this run leaves in place (not remade, or
    remade and failed): the golden rows change under them, so their tolerance is derived again
    on the same rows (the file, its accuracy and calibration records stay as they are)."""
    kept: dict[str, VariantSource] = {}
    for p, v in b.manifest.variants.items():
        if p == "fp32" or p in made:
            continue
        _, out = run.gate(b.variant_file(p))
        kept[p] = VariantSource(
            b.variant_file(p),
            accuracy=dict(v.accuracy),
            calibration=None if v.calibration is None else dict(v.calibration),
            tolerance=derive_tolerance(p, b.spec, run.reference, out, golden),
        )
    return kept


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
    run: CandidateRun,
    golden: GoldenSet,
    tolerances: Mapping[str, Mapping[str, Any]],
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
        if p in tolerances:
            entry["validate_tolerance"] = dict(tolerances[p])
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
        "golden": {**golden.record.to_dict(), "refreshed": golden.changed},
        "variants": variants,
    }


def _report_files(
    tmp: Path,
    report: Mapping[str, Any],
    outcomes: Mapping[str, VariantOutcome],
    run: CandidateRun,
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
