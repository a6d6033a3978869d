"""Latency and size of the fp32 / fp16 / int8 / int8-cpu variants under ONNX Runtime (CPU).

For ``reference`` and ``resnet18-224`` (random weights, exported with medfuse.export): make the
variants with ``quantize_bundle`` (calibrated on synthetic DICOM studies preprocessed with the
model's own spec; gate = top-1 agreement with FP32, AUROC not gated since the weights are
random), then time every variant at batch 1 and 8, interleaved round-robin in one run after a
warm-up. Writes ``benchmarks/results/precision-<host>-<tag>.json``.

Run: ``python benchmarks/precision.py [--iterations 20] [--models reference,resnet18-224]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from medfuse.calibration import GateConfig, QuantizeConfig, quantize_bundle
from medfuse.devices.fingerprint import device_fingerprint
from medfuse.export import export_bundle
from medfuse.models import build_model
from medfuse.synthetic import generate_studies

PRECISIONS = ("fp32", "fp16", "int8", "int8-cpu")


def _feeds(bundle: Any, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {
        i.name: rng.standard_normal(i.batch_shape(batch)).astype(np.float32)
        for i in bundle.spec.inputs
    }
    if bundle.spec.presence_input is not None:
        feeds[bundle.spec.presence_input.name][:] = 1.0
    return feeds


def bench_model(
    config: str, studies: tuple[Path, Path], iterations: int, tmp: Path
) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    module, spec = build_model(config)
    t0 = time.perf_counter()
    b = export_bundle(module.eval(), spec, tmp / f"{config}.medfuse")
    export_s = time.perf_counter() - t0
    qcfg = QuantizeConfig(
        target="both",
        calibrate_method="entropy",
        gate=GateConfig(min_agreement=0.99, max_auroc_drop=1.0),
        cache_dir=tmp / "cache",
        plots=False,
    )
    t0 = time.perf_counter()
    result = quantize_bundle(b, studies[0], qcfg, heldout=studies[1])
    quant_s = time.perf_counter() - t0
    b = result.bundle
    have = [p for p in PRECISIONS if p in b.precisions]
    sessions = {
        p: ort.InferenceSession(str(b.variant_file(p)), providers=["CPUExecutionProvider"])
        for p in have
    }
    rows: dict[str, Any] = {}
    for batch in (1, 8):
        feeds = _feeds(b, batch)
        times: dict[str, list[float]] = {p: [] for p in have}
        for p in have:  # warm-up
            sessions[p].run(None, feeds)
        for i in range(iterations):
            order = have if i % 2 == 0 else list(reversed(have))
            for p in order:
                t = time.perf_counter()
                sessions[p].run(None, feeds)
                times[p].append((time.perf_counter() - t) * 1000.0)
        med = {p: statistics.median(v) for p, v in times.items()}
        rows[f"batch{batch}"] = {
            p: {
                "median_ms": med[p],
                "p90_ms": sorted(times[p])[int(0.9 * (len(times[p]) - 1))],
                "speedup_vs_fp32": med["fp32"] / med[p],
            }
            for p in have
        }
    sizes = {p: (b.path / b.manifest.variants[p].file).stat().st_size for p in have}
    return {
        "model": config,
        "export_s": export_s,
        "quantize_s": quant_s,
        "gate_passed": result.passed,
        "gate": {p: v.gate.to_dict() for p, v in result.variants.items()},
        "cpu_candidates": result.report["variants"].get("int8-cpu", {}).get("cpu_candidates"),
        "nodes_excluded": result.report["variants"].get("int8", {}).get("nodes_excluded"),
        "latency": rows,
        "size_bytes": sizes,
        "size_ratio_vs_fp32": {p: sizes["fp32"] / s for p, s in sizes.items()},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--models", default="reference,resnet18-224")
    ap.add_argument("--patients", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="medfuse-precision-") as name:
        tmp = Path(name)
        generate_studies(tmp / "calib", args.patients, seed=101)
        generate_studies(tmp / "heldout", 6, seed=102)
        for config in args.models.split(","):
            r = bench_model(config, (tmp / "calib", tmp / "heldout"), args.iterations, tmp)
            results.append(r)
            for batch, row in r["latency"].items():
                line = "  ".join(
                    f"{p} {v['median_ms']:.1f} ms ({v['speedup_vs_fp32']:.2f}x)"
                    for p, v in row.items()
                )
                print(f"{config} {batch}: {line}")
            print(f"{config} sizes: {r['size_bytes']} gate passed: {r['gate_passed']}")
    fp = device_fingerprint()
    fp["onnxruntime"] = ort.__version__
    tag = hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()[:8]
    host = (
        platform.machine()
        + "-"
        + "".join(c for c in str(fp.get("cpu", "")).lower() if c.isalnum())[:24]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"precision-{host}-{tag}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "precision",
                "iterations": args.iterations,
                "machine": fp,
                "results": results,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
