"""Reports built from known numbers, for the report / compare / plot tests (``make_report``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medfuse.benchmarks.report import BenchReport, ComboResult
from medfuse.benchmarks.stats import LatencyStats, StabilityRule, StabilityVerdict

MakeReport = Callable[..., BenchReport]


def _result(backend: str, variant: str, batch: int, base_ms: float, stable: bool) -> ComboResult:
    samples = np.random.default_rng(batch).gamma(4.0, base_ms / 4.0, 400)
    verdict = StabilityVerdict(
        stable, 3 if stable else 9, 0.02 if stable else 0.12, StabilityRule()
    )
    return ComboResult(
        backend=backend,
        variant=variant,
        batch=batch,
        latency_ms=LatencyStats.from_samples(samples),
        throughput_per_s=batch * 1000.0 / float(samples.mean()),
        breakdown_ms={"input_copy": 0.01, "compute": base_ms, "postprocess": 0.02},
        stability=verdict.to_dict(),
        memory={"rss_steady_mib": 120.5, "rss_peak_mib": 130.0, "device": None},
        power={"mean_power_mw": 6000.0, "energy_per_item_mj": 6.0 * base_ms / batch}
        if backend == "tensorrt"
        else None,
        variant_sha256="cd" * 32,
        samples_ms=tuple(float(v) for v in np.sort(samples)),
    )


def make_report(
    device: str = "Jetson AGX Orin", fp32_sha: str = "ab" * 32, power_mode: str | None = None
) -> BenchReport:
    results = (
        _result("onnxruntime", "fp32", 1, 5.0, True),
        _result("onnxruntime", "fp32", 4, 15.0, True),
        _result("onnxruntime", "int8", 1, 2.5, False),
        _result("tensorrt", "fp16", 1, 0.8, True),
    )
    fingerprint = {
        "cpu_model": "ARMv8",
        "medfuse": "0.1.0",
        "onnxruntime": "1.32.0",
        "device": {
            "kind": "jetson",
            "name": device,
            "power_mode": None if power_mode is None else {"name": power_mode, "id": 0},
        },
        "bundle": {"model_name": "ref", "model_version": "1", "variants": {"fp32": fp32_sha}},
    }
    return BenchReport(
        fingerprint=fingerprint,
        results=results,
        settings={"stability_rule": StabilityRule().describe()},
        skipped=({"backend": "tensorrt", "variant": "*", "batch": None, "reason": "no engine"},),
    )
