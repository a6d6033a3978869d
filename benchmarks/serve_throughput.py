"""Serving throughput: ``medfuse serve`` (Triton via PyTriton, loopback) vs ``Session`` in-process.

For the tensor endpoint (one batch-1 tensor request each) and the study endpoint (one synthetic
multimodal study each, medfuse framing), with 1, 4 and 16 concurrent clients (threads, one
``tritonclient`` HTTP client each), a fixed number of requests per level after a warm-up:
throughput (requests/s) and p50 / p99 latency. The in-process baseline runs the same requests
through one ``Session`` (``infer`` at batch 1; ``predict_many`` over the studies with
``batch_size`` = the concurrency level), which is what a single process without a server does.

Runs in a Python that has medfuse[serve] (Triton's stub needs Debian's Python 3.11 here: see
``.ci/run``). The server is started as a subprocess on free 127.0.0.1 ports and always stopped.

Run: ``python benchmarks/serve_throughput.py [--bundle B.medfuse] [--requests 64] [--studies 8]``
(default bundle: the shipped ``reference``)
Writes ``benchmarks/results/serve_throughput-<fingerprint-id>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id
from medfuse.runtime.session import Session
from medfuse.serving.client import ServeClient
from medfuse.serving.study import encode_study

LEVELS = (1, 4, 16)


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _stats(lat_ms: list[float], wall_s: float) -> dict[str, float]:
    q = np.percentile(lat_ms, [50, 99])
    return {
        "requests": len(lat_ms),
        "throughput_rps": round(len(lat_ms) / wall_s, 2),
        "p50_ms": round(float(q[0]), 3),
        "p99_ms": round(float(q[1]), 3),
        "mean_ms": round(statistics.fmean(lat_ms), 3),
    }


def _load(fn: Any, items: list[Any], conc: int) -> dict[str, float]:
    def timed(item: Any) -> float:
        t0 = time.perf_counter()
        fn(item)
        return (time.perf_counter() - t0) * 1e3

    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as pool:
        lat = list(pool.map(timed, items))
    return _stats(lat, time.perf_counter() - t0)


def _server(
    bundle: Path, tmp: Path, max_batch: int, model: str
) -> tuple[subprocess.Popen[bytes], int]:
    http, grpc, metrics = _ports(3)
    out = (tmp / "serve.out").open("wb")
    env = dict(os.environ, MEDFUSE_KEY_SECRET_FILE=str(tmp / "secret"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "medfuse.cli.main", "serve", str(bundle),
         "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics),
         "--max-batch", str(max_batch), "--max-queue-delay-us", "2000"],
        stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            for name in (model, f"{model}_study"):  # models load after the server starts
                url = f"http://127.0.0.1:{http}/v2/models/{name}/ready"
                with urllib.request.urlopen(url, timeout=2):
                    pass
            return proc, http
        except OSError:
            time.sleep(0.5)
    _stop(proc)
    raise SystemExit(f"server did not start; see {tmp / 'serve.out'}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument(
        "--bundle", type=Path, default=None, help="bundle to serve (default: the shipped one)"
    )
    ap.add_argument("--requests", type=int, default=64, help="tensor requests per level")
    ap.add_argument("--studies", type=int, default=8, help="distinct synthetic studies")
    ap.add_argument("--study-requests", type=int, default=32, help="study requests per level")
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    if args.bundle is None:
        from medfuse.bundle import reference_bundle_path

        args.bundle = reference_bundle_path()

    from medfuse.runtime.dicom import discover_studies
    from medfuse.synthetic import generate_studies

    tmp = Path(tempfile.mkdtemp(prefix="mf-bench-"))
    generate_studies(tmp / "studies", args.studies, seed=0)
    found = discover_studies(tmp / "studies").studies
    payloads = [
        encode_study(Path(i.path).read_bytes() for s in st.series for i in s.instances)
        for st in found
    ]
    session = Session(args.bundle, max_batch=args.max_batch)
    spec = session.spec
    assert spec is not None
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.normal(size=i.batch_shape(1)).astype(np.float32) for i in spec.inputs}
    outs = [o.name for o in spec.outputs]
    results: dict[str, Any] = {"in_process": {}, "served": {}}

    for _ in range(5):
        session.infer(feeds)
    for conc in LEVELS:
        n = args.requests
        t0 = time.perf_counter()
        lat = []
        for _ in range(n):
            t1 = time.perf_counter()
            session.infer(feeds)
            lat.append((time.perf_counter() - t1) * 1e3)
        tensor = _stats(lat, time.perf_counter() - t0)
        studies = [found[i % len(found)] for i in range(args.study_requests)]
        t0 = time.perf_counter()
        done = list(session.predict_many(studies, batch_size=min(conc, args.max_batch), workers=2))
        wall = time.perf_counter() - t0
        study = {
            "requests": len(done),
            "throughput_rps": round(len(done) / wall, 2),
            "note": "predict_many batch = concurrency; latency not per request",
        }
        results["in_process"][str(conc)] = {"tensor": tensor, "study": study}
        print(f"in-process c={conc:<3} tensor {tensor}  study {study['throughput_rps']} studies/s")
    session.close()

    proc, http = _server(args.bundle, tmp, args.max_batch, spec.name)
    try:
        url = f"127.0.0.1:{http}"
        local = threading.local()  # tritonclient.http (gevent) clients stay in their thread
        clients: list[ServeClient] = []

        def client() -> ServeClient:
            if not hasattr(local, "client"):
                local.client = ServeClient(url, spec.name, timeout_s=120)
                clients.append(local.client)
            c: ServeClient = local.client
            return c

        for _ in range(3):
            client().infer(feeds, outs)
            client().predict_study(payloads[0])
        for conc in LEVELS:
            tensor = _load(lambda _i: client().infer(feeds, outs), list(range(args.requests)), conc)
            items = [payloads[i % len(payloads)] for i in range(args.study_requests)]
            study = _load(lambda p: client().predict_study(p), items, conc)
            results["served"][str(conc)] = {"tensor": tensor, "study": study}
            print(f"served     c={conc:<3} tensor {tensor}  study {study}")
        stats = client().statistics()["model_stats"][0]
        results["tensor_batch_stats"] = {
            str(b["batch_size"]): int(b["compute_infer"]["count"]) for b in stats["batch_stats"]
        }
    finally:
        _stop(proc)

    fp = device_fingerprint()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"serve_throughput-{fingerprint_id(fp)}.json"
    doc = {
        "benchmark": "serve_throughput",
        "bundle": args.bundle.name,
        "model": spec.name,
        "levels": list(LEVELS),
        "transport": "HTTP on 127.0.0.1, one tritonclient per thread",
        "machine": fp,
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
