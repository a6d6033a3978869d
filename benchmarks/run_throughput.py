"""End-to-end ``medfuse run`` throughput, the lean runtime's footprint, and a memory soak.

Three measurements, written to ``benchmarks/results/run_throughput-<fingerprint>.json``:

``throughput``
    ``medfuse run`` (the real CLI, in a subprocess pinned to ``--cpus``, ``--threads`` intra-op
    threads) on ``--studies`` synthetic studies: studies/s over the screening loop (from the
    run's own summary), wall time of the whole command (Python start, imports, discovery,
    session start included), its peak RSS, and the per-study split between reading (DICOM
    decode + pixel pipeline), preprocessing (resample + normalise) and inference (the study's
    share of its batch) from the records' ``timing_ms``. Reading and preprocessing run in
    ``--workers`` threads overlapped with inference, so the split is CPU time per study, not
    a partition of the wall time.
``lean``
    ``import medfuse.runtime`` and ``import medfuse.runtime.screening, medfuse.runtime.session``
    wall time in a fresh interpreter (median of 5), whether torch / onnx got loaded, and the
    peak RSS and wall time of ``medfuse run`` on the first 20 studies.
``soak`` (``--soak N``)
    N studies through one session in one process: the ``--studies`` study set is streamed
    ``ceil(N / studies)`` times (generating 1000 distinct studies would take longer than the
    soak itself; every pass reads, decodes and preprocesses the files again, so the work per
    study is the same), each result written as a durable JSONL line as ``medfuse run`` does.
    RSS is sampled every ``--rss-every`` studies; the curve goes to the JSON (and a PNG when
    matplotlib is installed). RSS is called flat when, after the first 20% of studies
    (warm-up), it grows by less than 5% and less than 20 MiB.

Synthetic studies are generated once into ``--workdir`` (default ``~/.cache/medfuse/bench``)
and reused. Run: ``python benchmarks/run_throughput.py [--studies 100] [--soak 1000]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from medfuse.runtime.results import ResultRecord, read_results

RESULTS = Path(__file__).parent / "results"

# Runs the real CLI and reports this process's peak RSS (KiB on Linux) on stderr.
_CLI_WITH_PEAK = """
import json, resource, sys
from medfuse.cli.main import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "onnx"})
print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "heavy_modules": heavy}), file=sys.stderr)
sys.exit(rc)
"""


def ensure_studies(workdir: Path, n: int, seed: int = 1) -> Path:
    """``n`` synthetic studies under ``workdir``, generated once and reused."""
    from medfuse.synthetic import MARKER, generate_studies

    folder = workdir / f"studies-{n}-seed{seed}"
    if (folder / MARKER).is_file() and (folder / ".complete").is_file():
        return folder
    t0 = time.perf_counter()
    generate_studies(folder, n, seed=seed)
    (folder / ".complete").write_text("ok\n")
    print(f"generated {n} studies in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return folder


def subset(studies: Path, n: int, workdir: Path) -> Path:
    """A folder with the first ``n`` patient folders of ``studies`` (hard links where possible;
    discovery does not follow symlinked folders)."""
    folder = workdir / f"{studies.name}-first{n}"
    if not folder.is_dir():
        tmp = Path(tempfile.mkdtemp(dir=workdir))
        for patient in sorted(p for p in studies.iterdir() if p.is_dir())[:n]:
            try:
                shutil.copytree(patient, tmp / patient.name, copy_function=os.link)
            except OSError:
                shutil.rmtree(tmp / patient.name, ignore_errors=True)
                shutil.copytree(patient, tmp / patient.name)
        tmp.rename(folder)
    return folder


def _pin(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


def run_cli(
    studies: Path, bundle: str | None, args: argparse.Namespace, tmp: Path, tag: str
) -> dict[str, Any]:
    """One ``medfuse run --json`` in a pinned subprocess: its summary, wall time, peak RSS."""
    out = tmp / f"{tag}.jsonl"
    cmd = [
        *_pin(args.cpus),
        sys.executable,
        "-c",
        _CLI_WITH_PEAK,
        "run",
        str(studies),
        "--out",
        str(out),
        "--json",
        "--batch",
        str(args.batch),
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--key-secret-file",
        str(tmp / "secret"),
    ]
    if bundle:
        cmd += ["--bundle", bundle]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"medfuse run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)
    extra = json.loads(proc.stderr.strip().splitlines()[-1])
    records = list(read_results(out).records)
    return {
        "summary": summary,
        "wall_s": round(wall, 3),
        "peak_rss_mib": round(extra["peak_rss_kib"] / 1024.0, 1),
        "heavy_modules": extra["heavy_modules"],
        "split_ms": split(records),
    }


def split(records: list[ResultRecord]) -> dict[str, dict[str, float]]:
    """Mean / median / p90 of each stage's per-study milliseconds over the ok records."""
    out: dict[str, dict[str, float]] = {}
    ok = [r for r in records if r.ok]
    for stage in ("read", "preprocess", "prepare", "inference", "inference_batch", "total"):
        v = sorted(float(r.timing_ms[stage]) for r in ok if stage in r.timing_ms)
        if v:
            out[stage] = {
                "mean": round(statistics.fmean(v), 3),
                "median": round(statistics.median(v), 3),
                "p90": round(v[min(len(v) - 1, int(0.9 * len(v)))], 3),
                "sum_s": round(sum(v) / 1e3, 3),
            }
    return out


def import_times(cpus: str | None) -> dict[str, Any]:
    """Fresh-interpreter import wall time (median of 5) of the runtime and the screening path."""
    res: dict[str, Any] = {}
    for name, stmt in (
        ("medfuse.runtime", "import medfuse.runtime"),
        ("screening+session", "import medfuse.runtime.screening, medfuse.runtime.session"),
        ("cli.main", "import medfuse.cli.main"),
    ):
        code = (
            "import time, sys, json; t=time.perf_counter(); "
            f"{stmt}; dt=time.perf_counter()-t; "
            "print(json.dumps({'s': dt, 'heavy': sorted(m for m in sys.modules "
            "if m.split('.')[0] in {'torch','onnx'})}))"
        )
        runs = []
        heavy: list[str] = []
        for _ in range(5):
            p = subprocess.run(
                [*_pin(cpus), sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
            )
            d = json.loads(p.stdout)
            runs.append(d["s"])
            heavy = d["heavy"]
        res[name] = {"median_s": round(statistics.median(runs), 4), "heavy_modules": heavy}
    return res


def soak(studies: Path, bundle: str | None, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """``args.soak`` studies through one session (the study set repeated), RSS sampled."""
    from medfuse.runtime.results_io import ResultsWriter

    from medfuse.benchmarks.memory import rss_mib
    from medfuse.runtime.dicom import discover_studies
    from medfuse.runtime.results.keys import load_or_create_secret
    from medfuse.runtime.session import Session

    if args.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    base = list(discover_studies(studies).studies)
    passes = math.ceil(args.soak / len(base))
    secret = load_or_create_secret(tmp / "secret")
    keys = [s.key(secret) for s in base]
    stream = [(f"{keys[i]}-{p}", base[i]) for p in range(passes) for i in range(len(base))][
        : args.soak
    ]
    samples: list[dict[str, float]] = [{"studies": 0, "rss_mib": rss_mib() or 0.0, "t_s": 0.0}]
    t0 = time.perf_counter()
    ok = 0
    with (
        Session(bundle, threads=args.threads) as session,
        ResultsWriter(tmp / "soak.jsonl") as writer,
    ):
        model = session.info.model_info()
        results = session.predict_many(
            (s for _k, s in stream), batch_size=args.batch, workers=args.workers
        )
        for n, ((key, _study), result) in enumerate(zip(stream, results, strict=True), start=1):
            rec = ResultRecord.from_outcome(key, result, model)
            writer.write(rec)
            ok += rec.ok
            if n % args.rss_every == 0 or n == len(stream):
                samples.append(
                    {
                        "studies": n,
                        "rss_mib": round(rss_mib() or 0.0, 1),
                        "t_s": round(time.perf_counter() - t0, 2),
                    }
                )
                print(
                    f"soak {n}/{len(stream)}: RSS {samples[-1]['rss_mib']:.0f} MiB", file=sys.stderr
                )
    elapsed = time.perf_counter() - t0
    warm = [s for s in samples if s["studies"] >= 0.2 * len(stream)]
    first, last = warm[0]["rss_mib"], warm[-1]["rss_mib"]
    peak_after = max(s["rss_mib"] for s in warm)
    growth = last - first
    return {
        "studies": len(stream),
        "distinct_studies": len(base),
        "passes": passes,
        "ok": ok,
        "elapsed_s": round(elapsed, 2),
        "studies_per_s": round(len(stream) / elapsed, 3),
        "rss_every": args.rss_every,
        "samples": samples,
        "warmup_studies": warm[0]["studies"],
        "rss_after_warmup_mib": first,
        "rss_end_mib": last,
        "rss_peak_after_warmup_mib": peak_after,
        "growth_after_warmup_mib": round(growth, 1),
        "flat_after_warmup": bool(growth < 0.05 * first and growth < 20.0),
        "model": model,
    }


def plot(soak_result: dict[str, Any], path: Path) -> str | None:
    """PNG of the RSS curve (``None`` when matplotlib is not installed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    xs = [s["studies"] for s in soak_result["samples"]]
    ys = [s["rss_mib"] for s in soak_result["samples"]]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(xs, ys, marker=".")
    ax.axvline(soak_result["warmup_studies"], color="grey", linestyle=":", label="end of warm-up")
    ax.set_xlabel("studies screened")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"medfuse run soak: {soak_result['studies']} studies, one session")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--studies", type=int, default=100, help="synthetic studies (default 100)")
    ap.add_argument("--soak", type=int, default=0, metavar="N", help="also run a soak of N studies")
    ap.add_argument(
        "--rss-every", type=int, default=25, help="RSS sample interval in studies (soak)"
    )
    ap.add_argument("--bundle", default=None, help="bundle (default: the shipped reference)")
    ap.add_argument("--cpus", default="0,1", help="CPU list to pin to (taskset), '' for none")
    ap.add_argument("--threads", type=int, default=2, help="inference intra-op threads")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=Path("~/.cache/medfuse/bench").expanduser())
    ap.add_argument("--skip-throughput", action="store_true", help="only the soak")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from medfuse.bundle import open_bundle
    from medfuse.bundle.reference import reference_bundle_path
    from medfuse.devices.fingerprint import bundle_facts, device_fingerprint, fingerprint_id

    bundle_path = Path(args.bundle) if args.bundle else reference_bundle_path()
    fp = device_fingerprint(bundle_facts(open_bundle(bundle_path)))
    args.workdir.mkdir(parents=True, exist_ok=True)
    studies = ensure_studies(args.workdir, args.studies)
    report: dict[str, Any] = {
        "benchmark": "run_throughput",
        "fingerprint": fp,
        "config": {
            "studies": args.studies,
            "cpus": args.cpus,
            "threads": args.threads,
            "batch": args.batch,
            "workers": args.workers,
            "bundle": bundle_path.name,
        },
    }
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        bundle = str(bundle_path)
        if not args.skip_throughput:
            run_cli(
                subset(studies, min(4, args.studies), args.workdir), bundle, args, tmp, "warm"
            )  # page cache
            report["throughput"] = run_cli(studies, bundle, args, tmp, "throughput")
            report["lean"] = {
                "imports": import_times(args.cpus),
                "run_20": run_cli(
                    subset(studies, min(20, args.studies), args.workdir),
                    bundle,
                    args,
                    tmp,
                    "lean20",
                ),
            }
        if args.soak:
            report["soak"] = soak(studies, bundle, args, tmp)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"run_throughput-{fingerprint_id(fp)}"
    if "soak" in report:
        report["soak"]["plot"] = plot(report["soak"], args.out / f"{stem}-soak.png")
    path = args.out / f"{stem}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    _print(report, path)
    return 0


def _print(report: dict[str, Any], path: Path) -> None:
    t = report.get("throughput")
    if t:
        s = t["summary"]
        print(
            f"throughput: {s['studies_per_s']:.2f} studies/s over {s['screened']} studies "
            f"(command wall {t['wall_s']:.1f} s, peak RSS {t['peak_rss_mib']:.0f} MiB)"
        )
        for stage, v in t["split_ms"].items():
            print(
                f"  {stage:16s} mean {v['mean']:8.1f} ms  median {v['median']:8.1f} ms  p90 {v['p90']:8.1f} ms"
            )
    lean = report.get("lean")
    if lean:
        for name, v in lean["imports"].items():
            print(
                f"import {name}: {v['median_s'] * 1e3:.0f} ms (heavy: {v['heavy_modules'] or 'none'})"
            )
        r = lean["run_20"]
        print(
            f"medfuse run, 20 studies: wall {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB, "
            f"torch/onnx loaded: {r['heavy_modules'] or 'none'}"
        )
    so = report.get("soak")
    if so:
        print(
            f"soak: {so['studies']} studies ({so['distinct_studies']} distinct x {so['passes']}), "
            f"{so['studies_per_s']:.2f} studies/s, RSS {so['rss_after_warmup_mib']:.0f} → "
            f"{so['rss_end_mib']:.0f} MiB after warm-up (flat: {so['flat_after_warmup']})"
        )
    print(f"written: {path}")


if __name__ == "__main__":
    sys.exit(main())
