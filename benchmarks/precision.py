"""Backends and precisions on this CPU: PyTorch eager vs ONNX Runtime fp32 / fp16 / int8 / int8-cpu.

For each model configuration (``reference``, ``resnet18-224``):

1. the network — trained weights from ``--checkpoint CONFIG=model.pt`` (``medfuse train``), or
   random weights when none is given — is exported with :func:`medfuse.export.export_bundle`,
   golden vectors taken from real preprocessed calibration studies;
2. :func:`medfuse.calibration.quantize_bundle` makes the int8 (TensorRT Q/DQ), int8-cpu (fastest
   passing ONNX Runtime layout) and fp16 variants, calibrated on ``--calib`` studies and gated
   against FP32 on the labelled ``--heldout`` studies plus the golden vectors. With trained
   weights the gate is the product default (top-1 agreement >= 0.99, macro AUROC drop <= 0.01);
   with random weights AUROC means nothing and only agreement is gated (said in the output). A
   variant that fails is not written and not timed; the JSON says so;
3. PyTorch eager (``torch.inference_mode``, same thread count as ONNX Runtime) and every written
   variant are timed at batch 1 and 8 in one run after a warm-up, on the same random inputs;
   model files' sizes recorded. Interleaved by blocks: each round every variant runs twice untimed, then three times
   timed, so the timed runs see the steady state a deployment running one model sees (after
   another model ran, a model's first runs are up to 1.7× slower: its weights are cold); the
   order alternates every round, so drift is shared.

Writes ``benchmarks/results/precision-<fingerprint-id>.json`` and prints a table.

Run (the recorded numbers)::

    medfuse synth --out calib --patients 360 --seed 1      # or reuse the training set
    medfuse synth --out heldout --patients 100 --seed 2
    medfuse train --config resnet18-224 --studies calib --heldout heldout --out r18/model.pt --epochs 12
    python benchmarks/precision.py --calib calib --heldout heldout \\
        --checkpoint reference=ref/model.pt --checkpoint resnet18-224=r18/model.pt

Without ``--calib`` / ``--heldout`` small synthetic sets are generated (a quick run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from medfuse.calibration import GateConfig, QuantizeConfig, quantize_bundle
from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id
from medfuse.export import export_bundle, random_inputs, study_inputs
from medfuse.models import build_model
from medfuse.synthetic import generate_studies

VARIANTS = ("fp32", "fp16", "int8", "int8-cpu")
# Block interleaving: per round each variant runs SETTLE_RUNS untimed, then TIMED_PER_ROUND
# timed runs. Measured here on resnet18-224: right after another model ran, a model's first
# run is slow (fp32 94 vs 55 ms; int8-cpu 42, then 38, then 24 ms) — its weights and pages are
# cold again. A deployment runs one model, so the timed runs start after two settling runs.
SETTLE_RUNS = 2
TIMED_PER_ROUND = 3
TORCH = "torch-eager-fp32"


def _module(config: str, checkpoint: Path | None) -> tuple[Any, Any, bool]:
    import torch

    if checkpoint is not None:
        from medfuse.models.checkpoint import load_checkpoint

        module, ckpt = load_checkpoint(checkpoint)
        if ckpt.config != config:
            raise SystemExit(f"{checkpoint} holds {ckpt.config!r}, not {config!r}")
        return module, ckpt.spec, True
    torch.manual_seed(0)
    module, spec = build_model(config)
    return module.eval(), spec, False


def _runners(module: Any, bundle: Any, variants: list[str]) -> dict[str, Callable[[Any], Any]]:
    import torch

    opts = ort.SessionOptions()
    runners: dict[str, Callable[[Any], Any]] = {}
    names = [i.name for i in bundle.spec.inputs]

    def eager(feeds: dict[str, np.ndarray]) -> Any:
        with torch.inference_mode():
            return module(*(torch.from_numpy(feeds[n]) for n in names))

    runners[TORCH] = eager
    for v in variants:
        sess = ort.InferenceSession(
            str(bundle.variant_file(v)), opts, providers=["CPUExecutionProvider"]
        )
        runners[v] = lambda feeds, s=sess: s.run(None, feeds)
    return runners


def _time(
    runners: dict[str, Callable[[Any], Any]],
    feeds: dict[str, np.ndarray],
    rounds: int,
    settle: int = SETTLE_RUNS,
    per_round: int = TIMED_PER_ROUND,
) -> dict[str, list[float]]:
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in names:  # warm-up (the first run builds caches)
        runners[n](feeds)
    for i in range(rounds):
        for n in names if i % 2 == 0 else reversed(names):
            for _ in range(settle):  # untimed: back to steady state after the switch
                runners[n](feeds)
            for _ in range(per_round):
                t = time.perf_counter()
                runners[n](feeds)
                times[n].append((time.perf_counter() - t) * 1000.0)
    return times


def _row(values: list[float], fp32_median: float) -> dict[str, float]:
    ordered = sorted(values)
    med = statistics.median(values)
    return {
        "median_ms": med,
        "p90_ms": ordered[round(0.9 * (len(ordered) - 1))],
        "min_ms": ordered[0],
        "max_ms": ordered[-1],
        "speedup_vs_ort_fp32": fp32_median / med,
    }


def bench_model(
    config: str,
    checkpoint: Path | None,
    calib: Path,
    heldout: Path,
    iterations: int,
    batches: tuple[int, ...],
    max_calib: int,
    tmp: Path,
) -> dict[str, Any]:
    import torch

    module, spec, trained = _module(config, checkpoint)
    t0 = time.perf_counter()
    bundle = export_bundle(
        module, spec, tmp / f"{config}.medfuse", golden_inputs=study_inputs(calib, spec, 4)
    )
    export_s = time.perf_counter() - t0
    gate = GateConfig() if trained else GateConfig(min_agreement=0.99, max_auroc_drop=1.0)
    qcfg = QuantizeConfig(
        target="both",
        calibrate_method="minmax",
        max_calib=max_calib,
        gate=gate,
        cache_dir=tmp / "cache",
        plots=False,
    )
    t0 = time.perf_counter()
    result = quantize_bundle(bundle, calib, qcfg, heldout=heldout)
    quant_s = time.perf_counter() - t0
    bundle = result.bundle
    written = [v for v in VARIANTS if v in bundle.precisions]
    runners = _runners(module, bundle, written)
    latency: dict[str, Any] = {}
    for batch in batches:
        times = _time(runners, random_inputs(spec, batch), iterations)
        fp32 = statistics.median(times["fp32"])
        latency[f"batch{batch}"] = {n: _row(v, fp32) for n, v in times.items()}
    sizes = {v: bundle.variant_file(v).stat().st_size for v in written}
    report_variants = result.report["variants"]
    return {
        "model": config,
        "weights": f"trained ({checkpoint.name})" if trained and checkpoint else "random",
        "torch_threads": torch.get_num_threads(),
        "gate_config": {"min_agreement": gate.min_agreement, "max_auroc_drop": gate.max_auroc_drop},
        "gate_note": None if trained else "random weights: AUROC not gated (means nothing)",
        "export_s": export_s,
        "quantize_s": quant_s,
        "variants_written": written,
        "variants_failed": [p for p, v in result.variants.items() if not v.passed],
        "gate": {p: v.gate.to_dict() for p, v in result.variants.items()},
        "cpu_candidates": report_variants.get("int8-cpu", {}).get("cpu_candidates"),
        "int8_cpu_layout": report_variants.get("int8-cpu", {}).get("layout"),
        "nodes_excluded": report_variants.get("int8", {}).get("nodes_excluded"),
        "latency": latency,
        "size_bytes": sizes,
        "size_ratio_vs_fp32": {v: sizes["fp32"] / s for v, s in sizes.items()},
    }


def _print(r: dict[str, Any]) -> None:
    print(
        f"\n{r['model']} ({r['weights']} weights); failed the gate: {r['variants_failed'] or 'none'}"
    )
    for batch, row in r["latency"].items():
        cells = "  ".join(
            f"{n} {v['median_ms']:.1f} ms ({v['speedup_vs_ort_fp32']:.2f}x)" for n, v in row.items()
        )
        print(f"  {batch}: {cells}")
    sizes = ", ".join(
        f"{v} {s / 1e6:.1f} MB ({r['size_ratio_vs_fp32'][v]:.1f}x smaller)"
        for v, s in r["size_bytes"].items()
    )
    print(f"  sizes: {sizes}")


def _parse_checkpoints(items: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in items:
        config, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--checkpoint takes CONFIG=PATH, got {item!r}")
        out[config] = Path(path)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--iterations",
        type=int,
        default=10,
        help=f"rounds per batch size ({TIMED_PER_ROUND} timed runs per variant each)",
    )
    ap.add_argument("--models", default="reference,resnet18-224")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="CONFIG=PATH")
    ap.add_argument("--calib", type=Path, default=None, help="calibration studies")
    ap.add_argument("--heldout", type=Path, default=None, help="labelled held-out studies")
    ap.add_argument("--max-calib", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    checkpoints = _parse_checkpoints(args.checkpoint)
    batches = tuple(int(b) for b in args.batches.split(","))
    results = []
    with tempfile.TemporaryDirectory(prefix="medfuse-precision-") as name:
        tmp = Path(name)
        calib, heldout = args.calib, args.heldout
        if calib is None:
            calib = tmp / "calib"
            generate_studies(calib, 12, seed=101)
        if heldout is None:
            heldout = tmp / "heldout"
            generate_studies(heldout, 8, seed=102)
        for config in args.models.split(","):
            r = bench_model(
                config,
                checkpoints.get(config),
                calib,
                heldout,
                args.iterations,
                batches,
                args.max_calib,
                tmp,
            )
            results.append(r)
            _print(r)
    fp = device_fingerprint()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"precision-{fingerprint_id(fp)}.json"
    doc = {
        "benchmark": "precision",
        "iterations": args.iterations,
        "batches": list(batches),
        "interleaved": True,
        "timing": (
            f"block-interleaved: per round each variant runs {SETTLE_RUNS} untimed, then "
            f"{TIMED_PER_ROUND} timed; order alternates every round"
        ),
        "machine": fp,
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
