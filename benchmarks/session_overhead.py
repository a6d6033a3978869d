"""Session overhead: medfuse ``Session`` vs the bare backend on the same model and inputs.

**ONNX Runtime rows** (CPU provider). Four ways to run one batch-1 inference, each on its own
``InferenceSession`` with identical options, interleaved in one process (the order rotates every
iteration) after a warm-up:

- ``ort_run``: ``InferenceSession.run(None, feeds)`` — what most code writes;
- ``ort_iobinding``: ``run_with_iobinding`` on inputs/outputs bound once — the bare backend
  call (DESIGN.md's budget: medfuse ≤ 3% over this at batch 1);
- ``session_infer``: ``Session.infer(feeds)`` — validates the feed layout (once per layout),
  checks for NaN/inf, binds the feeds in place, runs, returns the bound outputs;
- ``session_infer_unchecked``: the same on a session with ``check_finite=False``;
- ``session_execute``: ``Session.execute(buffers)`` — the predict path, where preprocessing
  has already written the bound buffers.

Models: ``--bundle``'s fp32 variant; else the shipped reference bundle's fp32 variant when
installed; else the ``reference`` and ``resnet18-224`` configs of :mod:`medfuse.models` exported
with torch (cached under ``~/.cache/medfuse/bench``); or ``--onnx PATH`` (random inputs from the
graph's shapes, batch 1).

**TensorRT rows** (``"tensorrt"`` in the JSON), on the bundle's engine for this device (the
shipped bundle, or ``--bundle``; ``--build`` builds one into a temporary copy when there is
none), interleaved the same way:

- ``trt_bare``: :class:`medfuse.benchmarks.bare_tensorrt.BareTensorRT` — the hand-written loop
  (H2D copies, ``execute_async_v3``, D2H copies, stream sync; inputs already in pinned memory);
- ``session_infer`` / ``session_execute``: as above, on ``Session(bundle, backend="tensorrt")``
  (CUDA graphs on, the default);
- ``session_execute_no_graph``: ``session_execute`` with the backend's CUDA graphs off — the
  like-for-like row for the overhead budget.

Then ``trtexec --loadEngine`` on the same plan (``--iterations`` queries, ``--duration=0``), once
plain and once with ``--useCudaGraph``, its summary parsed by :mod:`medfuse.benchmarks.trtexec`.
trtexec's ``Latency`` is H2D + compute + D2H timed with CUDA events, without the host-side
synchronisation a Python call pays, so host wall-clock rows sit above it by construction.
Without a usable TensorRT the JSON says ``"tensorrt": {"skipped": <reason>}``.

**The TensorRT rows have not yet run on real hardware** (no GPU on the machines used so far);
``tests/benchmarks/test_trtexec_gpu.py`` runs them end to end where one is present.

Writes JSON to ``benchmarks/results/session_overhead-<host>.json`` (``--out`` to change the folder).

Run: ``python benchmarks/session_overhead.py [--iterations 300] [--threads 1] [--onnx M.onnx]
[--bundle B.medfuse] [--build] [--trt-variant auto] [--trtexec PATH]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from medfuse.benchmarks.stats import LatencyStats
from medfuse.benchmarks.trtexec import find_trtexec, run_trtexec, trtexec_command
from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id
from medfuse.errors import MedfuseError
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


def _models(
    onnx_path: Path | None, bundle_path: Path | None = None
) -> list[tuple[str, Path, Path | None]]:
    """(name, ONNX file, the bundle it came from or ``None``) for each model to measure."""
    if onnx_path is not None:
        return [(onnx_path.stem, onnx_path, None)]
    if bundle_path is not None:
        from medfuse.bundle import open_bundle

        bundle = open_bundle(bundle_path)
        return [(f"bundle:{bundle.spec.name}", bundle.variant_file("fp32"), bundle.path)]
    try:
        from medfuse.bundle import open_bundle, reference_bundle_path

        bundle = open_bundle(reference_bundle_path())
        return [(f"shipped:{bundle.spec.name}", bundle.variant_file("fp32"), bundle.path)]
    except Exception as exc:
        print(f"shipped bundle not available ({type(exc).__name__}); exporting with torch")
    from medfuse.export.onnx_export import export_onnx
    from medfuse.models import CONFIGS, build_model

    out: list[tuple[str, Path, Path | None]] = []
    for config in CONFIGS:
        path = CACHE / f"{config}.onnx"
        if not path.is_file():
            module, spec = build_model(config)
            export_onnx(module, spec, path)
        out.append((config, path, None))
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


def _interleaved(
    methods: Mapping[str, Callable[[], object]], iterations: int
) -> dict[str, list[float]]:
    """Milliseconds per call of each method, the order rotating every iteration."""
    times: dict[str, list[float]] = {k: [] for k in methods}
    order = list(methods)
    for it in range(iterations):
        rot = it % len(order)
        for key in order[rot:] + order[:rot]:
            t0 = time.perf_counter()
            methods[key]()
            times[key].append((time.perf_counter() - t0) * 1e3)
    return times


def bench_model(
    name: str, path: Path, iterations: int, threads: int, bundle: Path | None = None
) -> dict[str, Any]:
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

    # a bundle's model runs as users run it: Session on the bundle, its fp32 variant (= path)
    source, precision = (bundle, "fp32") if bundle is not None else (path, "auto")
    # pipeline=False: tensors only, so the thread policy leaves ONNX Runtime's spinning on, as
    # in the bare sessions above (same intra-op threads, same options)
    session = Session(
        source,
        precision=precision,
        device="cpu",
        threads=threads,
        pipeline=False,
        graph_optimization="all",
    )
    unchecked = Session(
        source,
        precision=precision,
        device="cpu",
        threads=threads,
        pipeline=False,
        graph_optimization="all",
        check_finite=False,
    )
    exec_session = Session(
        source,
        precision=precision,
        device="cpu",
        threads=threads,
        pipeline=False,
        graph_optimization="all",
    )
    buffers = exec_session.buffers(1)
    for k, v in feeds.items():
        buffers.inputs[k][...] = v

    methods: dict[str, Callable[[], object]] = {
        "ort_run": lambda: bare.run(None, feeds),
        "ort_iobinding": lambda: bound.run_with_iobinding(binding),
        "session_infer": lambda: session.infer(feeds),
        # the same without the per-call NaN/inf pass over the feeds (check_finite=False)
        "session_infer_unchecked": lambda: unchecked.infer(feeds),
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

    times = _interleaved(methods, iterations)
    host_us = _host_side_us(session, feeds, iterations * 5)
    session.close()
    exec_session.close()
    unchecked.close()
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
            for k in ("session_infer", "session_infer_unchecked", "session_execute", "ort_run")
        },
        "overhead_vs_iobinding_us": {
            k: 1e3 * (stats[k]["median_ms"] - base)
            for k in ("session_infer", "session_infer_unchecked", "session_execute", "ort_run")
        },
        # per iteration, the call over the bare IOBinding call of the same rotation: robust to
        # a busy machine's drift (both calls of a pair see the same load)
        "paired_overhead_vs_iobinding_pct": {
            k: 100.0
            * (
                statistics.median(
                    a / b for a, b in zip(times[k], times["ort_iobinding"], strict=True)
                )
                - 1.0
            )
            for k in ("session_infer", "session_infer_unchecked", "session_execute", "ort_run")
        },
        # Session.infer's own work per call (validation, finiteness, binding; the model run
        # replaced by a no-op): robust where a busy machine drowns a 3% difference in noise
        "session_infer_host_side_us": host_us,
        "session_infer_host_side_pct_of_iobinding": {
            k: 100.0 * host_us[k] / (1e3 * stats["ort_iobinding"][m])
            for k, m in (("median", "median_ms"), ("min", "median_ms"))
        },
        "session_infer_vs_ort_run_pct": 100.0
        * (stats["session_infer"]["median_ms"] - stats["ort_run"]["median_ms"])
        / stats["ort_run"]["median_ms"],
    }


def _host_side_us(session: Session, feeds: Mapping[str, np.ndarray], n: int) -> dict[str, float]:
    """Microseconds per ``session.infer`` call with the model run itself made a no-op."""
    ort_session = session.backend._session  # type: ignore[attr-defined]
    real = ort_session.run_with_iobinding
    ort_session.run_with_iobinding = lambda binding, *a, **k: None
    try:
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            session.infer(feeds)
            ts.append((time.perf_counter() - t0) * 1e6)
    finally:
        ort_session.run_with_iobinding = real
    return {"median": statistics.median(ts), "min": min(ts)}


# -- TensorRT rows --------------------------------------------------------------------------------

NOT_ON_HARDWARE = (
    "the TensorRT rows of this suite are written against the TensorRT Python API (8.5 and later) "
    "and type-checked, but have not yet run on real hardware (docs/STATUS.md)"
)


def _engine(
    bundle_path: Path, variant: str, build: bool, tmp: Path
) -> tuple[Any, dict[str, Any]] | str:
    """The bundle holding an engine for this device and facts about it, or why there is none."""
    from medfuse.bundle import open_bundle
    from medfuse.runtime.backends.tensorrt import TensorRTBackend

    bundle = open_bundle(bundle_path)
    match = TensorRTBackend.match_engine(bundle, variant)
    built = None
    if match is None:
        if not build:
            return (
                f"bundle {bundle.label} has no TensorRT engine for this device (variant "
                f"{variant}); rerun with --build (builds one into a temporary copy) or run "
                "`medfuse build BUNDLE` first"
            )
        from medfuse.devices import BuildRequest, build_engine

        want = variant if variant != "auto" else ("fp16" if "fp16" in bundle.precisions else "fp32")
        copy = tmp / bundle.path.name
        shutil.copytree(bundle.path, copy)
        print(f"building a {want} TensorRT engine for this device into a temporary copy ...")
        built = build_engine(copy, BuildRequest(want, batch_sizes=(1,)))
        bundle = built.bundle
        match = TensorRTBackend.match_engine(bundle, want)
        if match is None:
            return f"the {want} engine just built is not accepted for this device (see the log)"
    precision, plan, why = match
    record = next(
        (r for r in bundle.manifest.engines.values() if (Path(bundle.path) / r.file) == Path(plan)),
        None,
    )
    info = {
        "bundle": bundle.spec.name,
        "variant": precision,
        "plan_file": Path(plan).name,
        "plan_sha256": hashlib.sha256(Path(plan).read_bytes()).hexdigest(),
        "key": None if record is None else record.key,
        "tensorrt_version": None if record is None else record.tensorrt_version,
        "built_for_this_run": built is not None,
        "build_seconds": None if built is None else round(built.result.seconds, 2),
        "why": why,
    }
    return bundle, info


def _trt_feeds(session: Session) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.backend.input_specs:
        shape = spec.batch_shape(1)
        if "presence" in spec.name:
            feeds[spec.name] = np.ones(shape, spec.dtype)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return feeds


def _time_tensorrt(bundle: Any, precision: str, iterations: int) -> dict[str, Any]:
    """Interleave bare TensorRT and the sessions on the bundle's engine; close all before return."""
    from medfuse.benchmarks.bare_tensorrt import BareTensorRT
    from medfuse.devices.detect import detect_device
    from medfuse.runtime.backends.tensorrt import TensorRTBackend

    opened: list[Any] = []
    try:
        sessions = {}
        for key in ("session_infer", "session_execute", "session_execute_no_graph"):
            sessions[key] = Session(
                bundle, backend="tensorrt", precision=precision, device="cuda:0"
            )
            opened.append(sessions[key])
        no_graph = sessions["session_execute_no_graph"].backend
        assert isinstance(no_graph, TensorRTBackend)
        no_graph.cuda_graphs = False  # read at every run: set before the first
        plan = sessions["session_infer"].choice.model_path
        feeds = _trt_feeds(sessions["session_infer"])
        bare = BareTensorRT(plan, batch=1, mapped=bool(detect_device().memory_shared))
        bare.open()
        opened.append(bare)
        if set(bare.inputs) != set(feeds):
            raise RuntimeError(
                f"engine inputs {sorted(bare.inputs)} != session inputs {sorted(feeds)}"
            )
        for k, v in feeds.items():
            bare.inputs[k][...] = v
        buffers = {}
        for key in ("session_execute", "session_execute_no_graph"):
            buffers[key] = sessions[key].buffers(1)
            for k, v in feeds.items():
                buffers[key].inputs[k][...] = v
        methods: dict[str, Callable[[], object]] = {
            "trt_bare": bare.run,
            "session_infer": lambda: sessions["session_infer"].infer(feeds),
            "session_execute": lambda: sessions["session_execute"].execute(
                buffers["session_execute"]
            ),
            "session_execute_no_graph": lambda: sessions["session_execute_no_graph"].execute(
                buffers["session_execute_no_graph"]
            ),
        }
        for fn in methods.values():  # warm-up (the graphed sessions capture after the first run)
            for _ in range(10):
                fn()
        bare.run()
        agreement = {}
        for key in ("session_infer", "session_execute", "session_execute_no_graph"):
            got = methods[key]()
            assert isinstance(got, dict)
            agreement[key] = max(
                float(np.max(np.abs(got[k].astype(np.float64) - v.astype(np.float64))))
                for k, v in bare.outputs.items()
            )
        times = _interleaved(methods, iterations)
        graph = getattr(getattr(buffers["session_execute"].handle, "graph", None), "captured", None)
        dynamic = dict(bare.dynamic_input_shapes)
    finally:
        for obj in reversed(opened):
            obj.close()
    stats = {k: _stats(v) for k, v in times.items()}
    base = stats["trt_bare"]["median_ms"]
    rows = ("session_infer", "session_execute", "session_execute_no_graph")
    return {
        "inputs": {k: list(v.shape) for k, v in feeds.items()},
        "iterations": iterations,
        "stats": stats,
        "overhead_vs_bare_pct": {k: 100.0 * (stats[k]["median_ms"] - base) / base for k in rows},
        "overhead_vs_bare_us": {k: 1e3 * (stats[k]["median_ms"] - base) for k in rows},
        "max_abs_diff_vs_bare": agreement,
        "session_cuda_graph_captured": graph,
        "plan": plan,
        "dynamic_input_shapes": dynamic,
    }


def _trtexec_rows(
    exe: Path,
    plan: Path,
    shapes: dict[str, Any],
    iterations: int,
    warmup_ms: int,
    stats: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """trtexec plain and with --useCudaGraph on ``plan``; each run's summary or why it failed."""
    out: dict[str, Any] = {}
    for label, graph in (("trtexec", False), ("trtexec_cuda_graph", True)):
        argv = trtexec_command(
            exe, plan, shapes=shapes, iterations=iterations, warmup_ms=warmup_ms, cuda_graph=graph
        )
        shown = [exe.name, *(a.replace(str(plan), plan.name) for a in argv[1:])]  # no local paths
        try:
            run = run_trtexec(argv)
        except MedfuseError as exc:
            out[label] = {"command": shown, "failed": str(exc)}
            continue
        lat = run.summary.latency.median_ms
        out[label] = {
            "command": shown,
            "seconds": round(run.seconds, 2),
            "summary": run.summary.to_dict(),
            "wall_median_vs_trtexec_latency_median_pct": {
                k: 100.0 * (st["median_ms"] - lat) / lat for k, st in stats.items()
            },
        }
    return out


def bench_tensorrt(
    bundle_path: Path | None,
    iterations: int,
    *,
    variant: str = "auto",
    build: bool = False,
    trtexec: Path | None = None,
    trtexec_warmup_ms: int = 200,
) -> dict[str, Any]:
    """The TensorRT rows, or ``{"skipped": reason}`` / ``{"failed": message}``."""
    from medfuse.runtime.backends.select import available_backends

    why = available_backends("cuda:0")["tensorrt"]
    if why is not None:
        return {"skipped": why, "note": NOT_ON_HARDWARE}
    if bundle_path is None:
        return {
            "skipped": "no bundle to take a TensorRT engine from: --onnx gives a bare ONNX "
            "file; pass --bundle (with --build if it has no engine for this device)"
        }
    try:
        with tempfile.TemporaryDirectory(prefix="medfuse-overhead-") as tmp:
            found = _engine(bundle_path, variant, build, Path(tmp))
            if isinstance(found, str):
                return {"skipped": found}
            bundle, engine = found
            result = _time_tensorrt(bundle, engine["variant"], iterations)
            plan = Path(result.pop("plan"))
            exe = trtexec or find_trtexec()
            if exe is None:
                result["trtexec"] = {
                    "skipped": "trtexec is neither on PATH nor in "
                    "/usr/src/tensorrt/bin (pass --trtexec PATH)"
                }
            else:
                result["trtexec"] = _trtexec_rows(
                    exe,
                    plan,
                    result["dynamic_input_shapes"],
                    iterations,
                    trtexec_warmup_ms,
                    result["stats"],
                )
    except Exception as exc:  # a benchmark records the failure; the ONNX Runtime rows still stand
        return {"failed": f"{type(exc).__name__}: {exc}"}
    return {"engine": engine, **result}


def _print_tensorrt(trt: dict[str, Any]) -> None:
    if "stats" not in trt:
        state = "skipped" if "skipped" in trt else "FAILED"
        print(f"tensorrt: {state}: {trt.get('skipped') or trt.get('failed')}")
        if trt.get("note"):
            print(f"tensorrt: note: {trt['note']}")
        return
    print(f"{'tensorrt':<16}{'method':<26}{'median ms':>10}{'p90 ms':>9}{'vs bare':>10}")
    for key, st in trt["stats"].items():
        pct = trt["overhead_vs_bare_pct"].get(key)
        extra = "" if pct is None else f"{pct:+.2f}%"
        print(
            f"{trt['engine']['variant']:<16}{key:<26}{st['median_ms']:>10.3f}"
            f"{st['p90_ms']:>9.3f}{extra:>10}"
        )
    if "skipped" in trt["trtexec"]:
        print(f"{'':<16}{'trtexec':<26}skipped: {trt['trtexec']['skipped']}")
        return
    for label, run in trt["trtexec"].items():
        if "summary" in run:
            s = run["summary"]
            print(
                f"{'':<16}{label:<26}{s['latency']['median_ms']:>10.3f}"
                f"{s['latency'].get('p90_ms', float('nan')):>9.3f}  (Latency, CUDA events; "
                f"GPU compute median {s['gpu_compute']['median_ms']:.3f} ms)"
            )
        else:
            print(f"{'':<16}{label:<26}FAILED: {run.get('failed')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    ap.add_argument("--onnx", type=Path, default=None, help="benchmark this ONNX file instead")
    ap.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="bundle for both parts (default: the shipped reference bundle)",
    )
    ap.add_argument(
        "--build",
        action="store_true",
        help="TensorRT: build an engine into a temporary copy of the bundle when it "
        "has none for this device",
    )
    ap.add_argument(
        "--trt-variant",
        default="auto",
        help="TensorRT: engine variant (default auto: int8 > fp16 > fp32; "
        "--build then builds fp16 when the bundle has it, else fp32)",
    )
    ap.add_argument(
        "--trtexec",
        type=Path,
        default=None,
        help="trtexec to compare with (default: PATH, then /usr/src/tensorrt/bin)",
    )
    ap.add_argument("--trtexec-warmup-ms", type=int, default=200)
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results",
        help="folder for the JSON result (default benchmarks/results)",
    )
    args = ap.parse_args(argv)

    rows = [
        bench_model(n, p, args.iterations, args.threads, b)
        for n, p, b in _models(args.onnx, args.bundle)
    ]
    print(f"{'model':<16}{'method':<24}{'median ms':>10}{'p90 ms':>9}{'vs iob':>9}{'paired':>9}")
    for r in rows:
        host = r["session_infer_host_side_us"]
        print(
            f"{r['model']}: Session.infer's own work {host['median']:.1f} µs per call (median; "
            f"{r['session_infer_host_side_pct_of_iobinding']['median']:.2f}% of the bare call)"
        )
        for key, st in r["stats"].items():
            pct = r["overhead_vs_iobinding_pct"].get(key)
            paired = r["paired_overhead_vs_iobinding_pct"].get(key)
            extra = "" if pct is None else f"{pct:+.2f}%"
            extra2 = "" if paired is None else f"{paired:+.2f}%"
            print(
                f"{r['model'][:15]:<16}{key:<24}{st['median_ms']:>10.3f}{st['p90_ms']:>9.3f}"
                f"{extra:>9}{extra2:>9}"
            )
    bundle_path = args.bundle
    if bundle_path is None and args.onnx is None:
        try:
            from medfuse.bundle import reference_bundle_path

            bundle_path = reference_bundle_path()
        except MedfuseError:
            bundle_path = None
    trt = bench_tensorrt(
        bundle_path,
        args.iterations,
        variant=args.trt_variant,
        build=args.build,
        trtexec=args.trtexec,
        trtexec_warmup_ms=args.trtexec_warmup_ms,
    )
    _print_tensorrt(trt)
    fp = fingerprint(args.threads)
    host = fingerprint_id(fp)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"session_overhead-{host}.json"
    doc = {
        "benchmark": "session_overhead",
        "batch": 1,
        "machine": fp,
        "results": rows,
        "tensorrt": trt,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    failed = "failed" in trt or any(
        isinstance(r, dict) and "failed" in r for r in trt.get("trtexec", {}).values()
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
