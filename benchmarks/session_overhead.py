"""Session overhead: medfuse ``Session`` vs bare ONNX Runtime on the same model and inputs.

Four ways to run one batch-1 inference, each on its own ``InferenceSession`` with identical
options, interleaved in one process (the order rotates every iteration) after a warm-up:

- ``ort_run``: ``InferenceSession.run(None, feeds)`` — what most code writes;
- ``ort_iobinding``: ``run_with_iobinding`` on inputs/outputs bound once — the bare backend
  call (DESIGN.md's budget: medfuse ≤ 3% over this at batch 1);
- ``session_infer``: ``Session.infer(feeds)`` — validates names/dtypes/shapes, checks for NaN,
  copies each feed into the bound buffer, runs, returns the bound outputs;
- ``session_execute``: ``Session.execute(buffers)`` — the predict path, where preprocessing
  has already written the bound buffers.

Models: the shipped reference bundle's fp32 variant when installed; else the ``reference``
and ``resnet18-224`` configs of :mod:`medfuse.models` exported with torch (cached under
``~/.cache/medfuse/bench``); or ``--onnx PATH`` (random inputs from the graph's shapes,
batch 1). Writes JSON to ``benchmarks/results/session_overhead-<host>-<tag>.json``.

Run: ``python benchmarks/session_overhead.py [--iterations 300] [--threads 1] [--onnx M.onnx]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from medfuse.benchmarks.stats import LatencyStats
from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id
from medfuse.runtime.session import Session

CACHE = Path(os.environ.get("MEDFUSE_CACHE_DIR", Path.home() / ".cache" / "medfuse")) / "bench"


def fingerprint(threads: int) -> dict[str, Any]:
    fp = device_fingerprint()
    fp.update(
        {
            "providers": ort.get_available_providers(),
            "intra_op_threads": threads,
        }
    )
    return fp


def _models(onnx_path: Path | None) -> list[tuple[str, Path]]:
    if onnx_path is not None:
        return [(onnx_path.stem, onnx_path)]
    try:
        from medfuse.bundle import open_bundle, reference_bundle_path

        bundle = open_bundle(reference_bundle_path())
        return [(f"shipped:{bundle.spec.name}", bundle.variant_file("fp32"))]
    except Exception as exc:
        print(f"shipped bundle not available ({type(exc).__name__}); exporting with torch")
    from medfuse.export.onnx_export import export_onnx
    from medfuse.models import CONFIGS, build_model

    out = []
    for config in CONFIGS:
        path = CACHE / f"{config}.onnx"
        if not path.is_file():
            module, spec = build_model(config)
            export_onnx(module, spec, path)
        out.append((config, path))
    return out


_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def _feeds(sess: ort.InferenceSession) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for node in sess.get_inputs():
        shape = [1] + [d if isinstance(d, int) else 1 for d in node.shape[1:]]
        dtype = _DTYPES[node.type]
        if "presence" in node.name:
            feeds[node.name] = np.ones(shape, dtype)
        else:
            feeds[node.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def _stats(ms: list[float]) -> dict[str, float]:
    st = LatencyStats.from_samples(ms)
    return {
        "median_ms": st.p50,
        "p90_ms": st.p90,
        "mean_ms": st.mean,
        "min_ms": st.min,
    }


def bench_model(name: str, path: Path, iterations: int, threads: int) -> dict[str, Any]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    bare = ort.InferenceSession(str(path), opts, providers=providers)
    bound = ort.InferenceSession(str(path), opts, providers=providers)
    feeds = _feeds(bare)

    # the bare IOBinding baseline: buffers allocated and bound once, inputs already in place
    binding = bound.io_binding()
    in_bufs = {k: v.copy() for k, v in feeds.items()}
    first = bare.run(None, feeds)
    out_bufs = {o.name: np.empty_like(r) for o, r in zip(bound.get_outputs(), first, strict=True)}
    for k, v in in_bufs.items():
        binding.bind_input(k, "cpu", 0, v.dtype.type, v.shape, v.ctypes.data)
    for k, v in out_bufs.items():
        binding.bind_output(k, "cpu", 0, v.dtype.type, v.shape, v.ctypes.data)

    session = Session(path, device="cpu", threads=threads, graph_optimization="all")
    exec_session = Session(path, device="cpu", threads=threads, graph_optimization="all")
    buffers = exec_session.buffers(1)
    for k, v in feeds.items():
        buffers.inputs[k][...] = v

    methods: dict[str, Callable[[], object]] = {
        "ort_run": lambda: bare.run(None, feeds),
        "ort_iobinding": lambda: bound.run_with_iobinding(binding),
        "session_infer": lambda: session.infer(feeds),
        "session_execute": lambda: exec_session.execute(buffers),
    }
    for fn in methods.values():  # warm-up
        for _ in range(5):
            fn()
    # same numbers from every path
    ref = first[0]
    for got in (
        out_bufs[bound.get_outputs()[0].name],
        session.infer(feeds)[bound.get_outputs()[0].name],
        exec_session.execute(buffers)[bound.get_outputs()[0].name],
    ):
        assert np.array_equal(got, ref), "paths disagree"

    times: dict[str, list[float]] = {k: [] for k in methods}
    order = list(methods)
    for it in range(iterations):
        rot = it % len(order)
        for key in order[rot:] + order[:rot]:
            t0 = time.perf_counter()
            methods[key]()
            times[key].append((time.perf_counter() - t0) * 1e3)
    session.close()
    exec_session.close()
    stats = {k: _stats(v) for k, v in times.items()}
    base = stats["ort_iobinding"]["median_ms"]
    return {
        "model": name,
        "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
        "iterations": iterations,
        "stats": stats,
        "overhead_vs_iobinding_pct": {
            k: 100.0 * (stats[k]["median_ms"] - base) / base
            for k in ("session_infer", "session_execute", "ort_run")
        },
        "overhead_vs_iobinding_us": {
            k: 1e3 * (stats[k]["median_ms"] - base)
            for k in ("session_infer", "session_execute", "ort_run")
        },
        "session_infer_vs_ort_run_pct": 100.0
        * (stats["session_infer"]["median_ms"] - stats["ort_run"]["median_ms"])
        / stats["ort_run"]["median_ms"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--onnx", type=Path, default=None, help="benchmark this ONNX file instead")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    rows = [bench_model(n, p, args.iterations, args.threads) for n, p in _models(args.onnx)]
    print(f"{'model':<16}{'method':<17}{'median ms':>10}{'p90 ms':>9}{'vs iobinding':>14}")
    for r in rows:
        for key, st in r["stats"].items():
            pct = r["overhead_vs_iobinding_pct"].get(key)
            extra = "" if pct is None else f"{pct:+.2f}%"
            print(
                f"{r['model']:<16}{key:<17}{st['median_ms']:>10.3f}{st['p90_ms']:>9.3f}{extra:>14}"
            )
    fp = fingerprint(args.threads)
    host = fingerprint_id(fp)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"session_overhead-{host}.json"
    out.write_text(
        json.dumps(
            {"benchmark": "session_overhead", "batch": 1, "machine": fp, "results": rows}, indent=2
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
