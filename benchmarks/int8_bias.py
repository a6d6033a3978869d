"""INT32 biases or float biases in the Q/DQ graph: ONNX Runtime CPU latency of each INT8 layout.

ONNX Runtime's quantizer stores Conv / Gemm biases as INT32 behind a DequantizeLinear unless told
``QuantizeBias=False``. TensorRT's parser refuses that (DequantizeLinear takes INT8 / FP8 / FP4 /
INT4 only), so medfuse keeps biases float. This script measures whether the CPU layouts
(``int8-cpu``) would gain from INT32 biases: for every default CPU layout (the last is the
TensorRT layout), both bias choices are quantized from the same calibration ranges and timed on ONNX
Runtime's CPU provider at batch 1 and 8, interleaved by rounds (each round: every model runs
twice untimed, then ``--runs`` times timed; order reversed every round), against FP32 in the
same run. Also counts DequantizeLinear nodes on INT32 inputs and the largest output difference
between the two bias choices on the golden vectors.

Writes ``benchmarks/results/int8_bias-<fingerprint-id>.json`` and prints a table.

Run (the recorded numbers)::

    medfuse synth --patients 72 --seed 1 --out calib
    python benchmarks/int8_bias.py --calib calib            # the shipped reference bundle
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from medfuse.bundle import open_bundle, reference_bundle_path
from medfuse.calibration._ort import cpu_session, run_all
from medfuse.calibration.config import DEFAULT_CPU_CANDIDATES, QuantizeConfig
from medfuse.calibration.int8 import quantize_int8
from medfuse.calibration.ranges import calibrate_ranges
from medfuse.calibration.reader import scan_studies
from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id
from medfuse.export.lint import dequantize_input_problems

SETTLE = 2


def _feeds(bundle: Any, batch: int) -> dict[str, np.ndarray]:
    with np.load(bundle.file("golden.npz")) as z:
        rows = {i.name: z[i.name] for i in bundle.spec.inputs}
    n = next(iter(rows.values())).shape[0]
    idx = np.arange(batch) % n
    return {k: np.ascontiguousarray(v[idx]) for k, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=None, help="default: the shipped reference")
    ap.add_argument("--calib", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per model per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()

    bundle = open_bundle(args.bundle or reference_bundle_path())
    fp32 = bundle.variant_file("fp32")
    config = QuantizeConfig(precisions=("int8",), target="both")
    studies = scan_studies(args.calib, bundle.spec, limit=config.max_calib)
    ranges = calibrate_ranges(fp32, bundle.manifest.variants["fp32"].sha256, studies, bundle.spec, config)
    layouts = list(DEFAULT_CPU_CANDIDATES)
    models: dict[str, Path] = {"fp32": fp32}
    meta: dict[str, dict[str, Any]] = {}
    golden = _feeds(bundle, 8)
    with tempfile.TemporaryDirectory() as tmp:
        for i, base in enumerate(layouts):
            outs = {}
            for bias in (True, False):
                layout = dataclasses.replace(base, quantize_bias=bias)
                path = quantize_int8(fp32, Path(tmp) / f"m{i}-{bias}.onnx", ranges, config, layout=layout)
                models[layout.label] = path
                problems = dequantize_input_problems(onnx.load(str(path)))
                outs[bias] = run_all(cpu_session(path, args.threads), golden)
                meta[layout.label] = {
                    "layout": base.label,
                    "bias": "int32" if bias else "float",
                    "dq_int32_inputs": sum(1 for p in problems if p[2] == "INT32"),
                    "size_bytes": path.stat().st_size,
                }
            diff = max(float(np.abs(outs[True][k] - outs[False][k]).max()) for k in outs[True])
            for bias in (True, False):
                meta[dataclasses.replace(base, quantize_bias=bias).label]["max_abs_diff_bias_choice"] = diff
        sessions = {k: cpu_session(p, args.threads) for k, p in models.items()}
        times: dict[tuple[str, int], list[float]] = {(k, b): [] for k in models for b in (1, 8)}
        for r in range(args.rounds):
            order = list(models) if r % 2 == 0 else list(reversed(models))
            for batch in (1, 8):
                feed = _feeds(bundle, batch)
                for k in order:
                    for _ in range(SETTLE):
                        sessions[k].run(None, feed)
                    for _ in range(args.runs):
                        t = time.perf_counter()
                        sessions[k].run(None, feed)
                        times[(k, batch)].append((time.perf_counter() - t) * 1e3)
    med = {key: statistics.median(v) for key, v in times.items()}
    rows = []
    for k in models:
        row = {"model": k, **meta.get(k, {"layout": "fp32", "bias": "float"})}
        for b in (1, 8):
            row[f"ms_b{b}"] = round(med[(k, b)], 3)
            row[f"speedup_vs_fp32_b{b}"] = round(med[("fp32", b)] / med[(k, b)], 3)
        rows.append(row)
    fp = device_fingerprint()
    result = {
        "bundle": bundle.label,
        "threads": args.threads,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "fingerprint": fp,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"int8_bias-{fingerprint_id(fp)}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"{'layout':34} {'bias':6} {'DQ i32':>6} {'ms b1':>7} {'x fp32':>6} {'ms b8':>7} {'x fp32':>6}")
    for row in rows:
        print(
            f"{row['layout'][:34]:34} {row['bias']:6} {row.get('dq_int32_inputs', 0):>6} "
            f"{row['ms_b1']:>7.2f} {row['speedup_vs_fp32_b1']:>6.2f} "
            f"{row['ms_b8']:>7.2f} {row['speedup_vs_fp32_b8']:>6.2f}"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
