"""Run a benchmark: every backend × variant × batch of a bundle through the measurement harness.

Two modes per combination:

``tensor`` (always)
    One step is one inference on a fixed batch of synthetic inputs (standard normal; presence
    masks all ones), through the session's bound buffers, timed per stage: ``input_copy``
    (feeds copied into the bound input buffers), ``compute`` (the backend call; with ONNX
    Runtime on CUDA it includes the host↔device copies), ``postprocess`` (output activations,
    as results are built). A backend that exposes GPU timings after each call in a mapping
    ``last_timings.stages_ms()`` (the TensorRT backend: CUDA events for ``h2d`` / ``compute`` / ``d2h``)
    has them reported instead of the wall-clock ``compute`` (which is kept as ``execute_wall``).
``end_to_end`` (with ``studies``)
    One step is a pass over a folder of DICOM studies the way ``medfuse run`` does it:
    discovery, then :meth:`~medfuse.runtime.session.Session.predict_many` (read, preprocess
    into the bound buffers in worker threads, inference). Latency and stages are amortised
    per study (pass time / studies); throughput is studies per second. Stage times of the
    worker threads overlap each other and inference, so they do not add up to the latency.

On a Jetson with ``tegrastats`` the measurement runs under :class:`TegrastatsSampler`: mean
power, energy per item, and the clock-lock check go into the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.benchmarks.harness import HarnessConfig, Measurement, StepFn, measure
from medfuse.benchmarks.memory import peak_rss_mib, rss_mib, snapshot
from medfuse.benchmarks.report import BenchReport, ComboResult
from medfuse.benchmarks.stats import StabilityRule
from medfuse.benchmarks.tegrastats import (
    TegrastatsSample,
    TegrastatsSampler,
    check_clocks,
    energy_per_inference_mj,
    mean_power_mw,
    tegrastats_available,
)
from medfuse.devices.fingerprint import bundle_facts, device_fingerprint
from medfuse.errors import MedfuseError, UsageError
from medfuse.runtime.threads import check_threads

__all__ = ["BenchConfig", "run_benchmark"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchConfig:
    """What to benchmark and how.

    Parameters
    ----------
    bundle:
        Bundle path, an opened bundle, or ``None`` for the shipped reference bundle.
    backends, variants:
        Names to measure; empty means every available backend / every variant of the bundle.
    batches:
        Batch sizes (tensor mode and end-to-end).
    studies:
        A folder of DICOM studies for the end-to-end mode (``None``: tensor mode only).
    window_ms, max_seconds, stability:
        Harness settings: window length, bound per combination and mode, allowed spread.
    device, threads, workers:
        Session device (``"auto"``), backend threads, preprocessing workers (end to end).
    power:
        Sample ``tegrastats`` where it exists.
    """

    bundle: Any = None
    backends: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    batches: tuple[int, ...] = (1,)
    studies: Path | None = None
    window_ms: float = 1000.0
    max_seconds: float = 30.0
    stability: float = 0.05
    device: str = "auto"
    threads: int | None = None
    workers: int = 2
    power: bool = True
    tegrastats_interval_ms: int = 100

    def harness(self, items_per_step: int) -> HarnessConfig:
        return HarnessConfig(
            window_ms=self.window_ms,
            max_seconds=self.max_seconds,
            rule=StabilityRule(spread=self.stability),
            items_per_step=items_per_step,
        )

    def settings(self) -> dict[str, Any]:
        return {
            "window_ms": self.window_ms,
            "max_seconds": self.max_seconds,
            "stability": self.stability,
            "stability_rule": StabilityRule(spread=self.stability).describe(),
            "batches": list(self.batches),
            "end_to_end": self.studies is not None,
            "device": self.device,
            "threads": self.threads,
            "workers": self.workers,
        }


def _open(bundle: Any) -> Any:
    from medfuse.bundle import open_bundle
    from medfuse.bundle.reference import reference_bundle_path

    if bundle is None:
        return open_bundle(reference_bundle_path())
    if isinstance(bundle, str | Path):
        return open_bundle(bundle)
    return bundle


def _backends(requested: Sequence[str], device: str) -> tuple[list[str], list[dict[str, Any]]]:
    from medfuse.runtime.backends.select import BACKENDS, available_backends

    unknown = [b for b in requested if b not in BACKENDS]
    if unknown:
        raise UsageError(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    status = available_backends(device)
    wanted = list(requested) or list(BACKENDS)
    names = [b for b in wanted if status.get(b) is None]
    skipped = [
        {"backend": b, "variant": "*", "batch": None, "reason": status[b]}
        for b in wanted
        if status.get(b) is not None
    ]
    return names, skipped


def run_benchmark(
    config: BenchConfig,
    progress: Callable[[str], None] | None = None,
    *,
    counted: Callable[[int, int, str], None] | None = None,
) -> BenchReport:
    """Measure every requested combination; never raises for one combination that cannot run.

    Parameters
    ----------
    config:
        What to measure.
    progress:
        Called with a short line before each measurement (for a CLI status line).
    counted:
        Called as ``counted(done, total, line)`` before each measurement and once at the end
        (for a bar with an ETA): ``total`` counts every backend × variant × batch (× mode).

    Returns
    -------
    BenchReport
        One :class:`ComboResult` per combination and mode; combinations that could not run
        are listed in ``skipped`` with the reason.

    Raises
    ------
    BundleError
        The bundle cannot be opened.
    UsageError
        An unknown backend or variant name, or a batch below 1.
    """
    if any(b < 1 for b in config.batches):
        raise UsageError(f"batch sizes must be at least 1, got {list(config.batches)}")
    if config.threads is not None:
        check_threads(config.threads, "threads")
    check_threads(config.workers, "workers", minimum=0)
    bundle = _open(config.bundle)
    facts = bundle_facts(bundle)
    variants = list(config.variants) or list(bundle.precisions)
    unknown = [v for v in variants if v not in bundle.precisions]
    if unknown:
        raise UsageError(
            f"variant(s) {unknown} not in this bundle; it has {', '.join(bundle.precisions)}"
        )
    backends, skipped = _backends(config.backends, config.device)
    studies = _discover(config.studies) if config.studies is not None else None
    results: list[ComboResult] = []
    per_variant = len(config.batches) * (2 if studies is not None else 1)
    total = len(backends) * len(variants) * per_variant
    done = [0]

    def say(line: str) -> None:
        if progress:
            progress(line)
        if counted:
            counted(min(done[0], total), total, line)
        done[0] += 1

    for k, backend in enumerate(backends):
        for j, variant in enumerate(variants):
            done[0] = (k * len(variants) + j) * per_variant  # a skipped variant keeps the count
            try:
                results += _run_variant(bundle, backend, variant, config, studies, say)
            except MedfuseError as exc:
                logger.warning("skipping %s / %s: %s", backend, variant, exc)
                skipped.append(
                    {"backend": backend, "variant": variant, "batch": None, "reason": str(exc)}
                )
    if counted:
        counted(total, total, "done")
    return BenchReport(
        fingerprint=device_fingerprint(facts),
        results=tuple(results),
        settings=config.settings(),
        skipped=tuple(skipped),
    )


def _discover(folder: Path) -> Any:
    from medfuse.runtime.dicom import discover_studies

    found = discover_studies(folder)
    if not found.studies:
        raise UsageError(
            f"no DICOM studies found under the --studies folder ({found.n_skipped} "
            "files skipped); give a folder of DICOM files"
        )
    return found


def _run_variant(
    bundle: Any,
    backend: str,
    variant: str,
    config: BenchConfig,
    studies: Any,
    progress: Callable[[str], None] | None,
) -> list[ComboResult]:
    from medfuse.runtime.session import Session

    rss_before = rss_mib()
    out: list[ComboResult] = []
    with Session(
        bundle,
        backend=backend,
        precision=variant,
        device=config.device,
        threads=config.threads,
        workers=config.workers,
        pipeline=config.studies is not None,
        max_batch=max(config.batches),
    ) as session:
        sha = session.info.model_sha256
        base = {
            "backend": backend,
            "variant": variant,
            "device": session.info.device,
            "variant_sha256": sha,
        }
        for batch in config.batches:
            if progress:
                progress(f"{backend} / {variant} / batch {batch}")
            step = _tensor_step(session, batch)
            m, power = _measured(step, config.harness(batch), config)
            out.append(_result(m, power, base, batch, rss_before, "tensor", "inference", 1))
            if studies is not None:
                if progress:
                    progress(f"{backend} / {variant} / batch {batch} / end-to-end")
                n = len(studies.studies)
                assert config.studies is not None
                e2e, notes = _study_step(session, config.studies, batch, config.workers)
                m, power = _measured(e2e, config.harness(n), config)
                r = _result(m, power, base, batch, rss_before, "end_to_end", "study", n)
                out.append(replace(r, notes=(*r.notes, *notes)))
    return out


def _measured(
    step: StepFn, harness: HarnessConfig, config: BenchConfig
) -> tuple[Measurement, dict[str, Any] | None]:
    """Run the harness, under the tegrastats sampler when there is one."""
    if not (config.power and tegrastats_available()):
        return measure(step, harness), None
    with TegrastatsSampler(config.tegrastats_interval_ms) as sampler:
        m = measure(step, harness)
    return m, _power(sampler.samples, m, harness.items_per_step)


def _power(
    samples: Sequence[TegrastatsSample], m: Measurement, items_per_step: int
) -> dict[str, Any] | None:
    power = mean_power_mw(samples)
    if power is None:
        return None
    items = m.steps_measured * items_per_step
    clocks = check_clocks(samples)
    if clocks.locked is False:
        logger.warning("%s", clocks.message)
    rails: dict[str, list[float]] = {}
    for s in samples:
        for name, rail in s.rails.items():
            rails.setdefault(name, []).append(rail.current_mw)
    return {
        "mean_power_mw": power,
        "energy_per_item_mj": energy_per_inference_mj(power, m.measured_s, items),
        "rails_mean_mw": {k: float(np.mean(v)) for k, v in rails.items()},
        "samples": len(samples),
        "clocks": clocks.to_dict(),
        "method": "mean total power (VDD_IN, else sum of rails) x measured time / items",
    }


def _result(
    m: Measurement,
    power: dict[str, Any] | None,
    base: Mapping[str, Any],
    batch: int,
    rss_before: float | None,
    mode: str,
    unit: str,
    per_step: int,
) -> ComboResult:
    """A ComboResult; latency and stages divided by ``per_step`` (items per step, end to end)."""
    lat = m.latency
    if per_step > 1:
        lat = lat.scaled(1.0 / per_step)
    mem = snapshot(device=base["device"] != "cpu")
    notes: list[str] = []
    if power and power["clocks"]["locked"] is False:
        notes.append(power["clocks"]["message"])
    return ComboResult(
        backend=base["backend"],
        variant=base["variant"],
        batch=batch,
        latency_ms=lat,
        throughput_per_s=m.throughput_per_s,
        breakdown_ms={k: v / per_step for k, v in m.stage_ms.items()},
        stability=m.verdict.to_dict(),
        memory={
            "rss_before_session_mib": rss_before,
            "rss_steady_mib": mem.rss_mib,
            "rss_peak_mib": peak_rss_mib(),
            "device": mem.device,
        },
        mode=mode,
        device=base["device"],
        unit=unit,
        power=power,
        variant_sha256=base["variant_sha256"],
        samples_ms=tuple(v / per_step for v in m.samples_ms),
        notes=tuple(notes),
    )


def _tensor_step(session: Any, batch: int) -> StepFn:
    """One inference on synthetic inputs through the bound buffers, timed per stage."""
    from medfuse.runtime.results import apply_activation

    buffers = session.buffers(batch)
    spec = session.spec
    presence = {i.name for i in spec.inputs if i.role == "presence"} if spec else set()
    rng = np.random.default_rng(0)
    src = {
        name: (
            np.ones_like(arr)
            if name in presence
            else rng.standard_normal(arr.shape).astype(arr.dtype)
            if arr.dtype.kind == "f"
            else np.zeros_like(arr)
        )
        for name, arr in buffers.inputs.items()
    }
    activations = [(o.name, o.activation) for o in spec.outputs] if spec else []
    backend = session.backend
    clock = time.perf_counter

    def step() -> dict[str, float]:
        t0 = clock()
        for name, dst in buffers.inputs.items():
            np.copyto(dst, src[name])
        t1 = clock()
        outputs = session.execute(buffers)
        t2 = clock()
        for name, act in activations:
            apply_activation(outputs[name], act)
        t3 = clock()
        stages = {
            "input_copy": (t1 - t0) * 1e3,
            "compute": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
        }
        timings = getattr(backend, "last_timings", None)
        if timings is not None and hasattr(timings, "stages_ms"):
            stages["execute_wall"] = stages.pop("compute")
            stages.update(timings.stages_ms())
        return stages

    return step


def _study_step(session: Any, folder: Path, batch: int, workers: int) -> tuple[StepFn, list[str]]:
    """One pass over the study folder (discovery + predict_many); stage totals for the pass."""
    from medfuse.runtime.dicom import discover_studies
    from medfuse.runtime.results import StudyResult

    notes: list[str] = []

    def step() -> dict[str, float]:
        t0 = time.perf_counter()
        disc = discover_studies(folder)
        t1 = time.perf_counter()
        sums = {"discovery": (t1 - t0) * 1e3, "read": 0.0, "preprocess": 0.0, "inference": 0.0}
        failed = 0
        for outcome in session.predict_many(disc.studies, batch_size=batch, workers=workers):
            if isinstance(outcome, StudyResult):
                for k in ("read", "preprocess", "inference"):
                    sums[k] += float(outcome.timing_ms.get(k, 0.0))
            else:
                failed += 1
        if failed and not notes:
            notes.append(f"{failed} of {len(disc.studies)} studies failed in each pass")
        return sums

    return step, notes
