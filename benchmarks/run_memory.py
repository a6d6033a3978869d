"""Where ``medfuse run``'s memory goes as the number of studies grows.

``run``
    The real CLI (``medfuse run --json``) on the first 100 / 300 / 1000 patient folders of
    ``--studies`` (hard-linked subsets): peak RSS of the whole command and RSS at exit.
``loop``
    The screening loop alone: one ``Session``, ``predict_many`` over ``--loop-studies`` studies
    (a small folder discovered afresh on every pass, so no study object outlives its pass), one
    JSONL record written per study as ``medfuse run`` does; RSS sampled every 50 studies.
``discovery``
    tracemalloc: bytes the discovered ``Study`` objects of ``--small`` hold per study, by
    source line (what a run keeps for every study while discovery is not streamed).

Writes ``benchmarks/results/run_memory-<host>.json``.
Run: ``python benchmarks/run_memory.py --studies DIR1000 --small DIR40``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from medfuse.benchmarks.memory import rss_mib
from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id

_CLI_WITH_RSS = """
import json, resource, sys
from medfuse.cli.main import main
rc = main(sys.argv[1:])
with open("/proc/self/status") as fh:
    rss = [int(line.split()[1]) for line in fh if line.startswith("VmRSS:")]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_rss_kib": peak, "exit_rss_kib": rss[0] if rss else 0}), file=sys.stderr)
sys.exit(rc)
"""


def subset(studies: Path, n: int, work: Path) -> Path:
    folder = work / f"first{n}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for patient in sorted(p for p in studies.iterdir() if p.is_dir())[:n]:
            try:
                shutil.copytree(patient, folder / patient.name, copy_function=os.link)
            except OSError:
                shutil.rmtree(folder / patient.name, ignore_errors=True)
                shutil.copytree(patient, folder / patient.name)
    return folder


def run_cli(folder: Path, work: Path) -> dict[str, Any]:
    out = work / "r.jsonl"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", _CLI_WITH_RSS, "run", str(folder), "--out", str(out), "--json"]
    cmd += ["--key-secret-file", str(work / "secret")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"medfuse run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)
    mem = json.loads(proc.stderr.strip().splitlines()[-1])
    return {
        "studies": summary["total"],
        "ok": summary["by_status"].get("ok", 0),
        "peak_rss_mib": round(mem["peak_rss_kib"] / 1024, 1),
        "exit_rss_mib": round(mem["exit_rss_kib"] / 1024, 1),
        "discovery_s": summary.get("discovery_s"),
        "elapsed_s": summary.get("elapsed_s"),
    }


def loop(folder: Path, total: int, work: Path) -> dict[str, Any]:
    from medfuse.runtime.dicom import discover_studies
    from medfuse.runtime.results import ResultRecord
    from medfuse.runtime.results.io import ResultsWriter
    from medfuse.runtime.session import Session

    def stream() -> Any:
        n = 0
        while n < total:
            for study in discover_studies(folder).studies:
                if n == total:
                    return
                n += 1
                yield study

    samples = []
    out = work / "loop.jsonl"
    out.unlink(missing_ok=True)
    with Session(None) as session, ResultsWriter(out) as writer:
        model = session.info.model_info()
        outcomes = session.predict_many(stream(), batch_size=4)
        for n, outcome in enumerate(outcomes, start=1):
            writer.write(ResultRecord.from_outcome(f"k{n}", outcome, model))
            if n % 50 == 0:
                gc.collect()
                samples.append({"studies": n, "rss_mib": round(rss_mib() or 0.0, 1)})
                print(f"loop {n}/{total}: RSS {samples[-1]['rss_mib']} MiB", file=sys.stderr)
    warm = [s for s in samples if s["studies"] >= 100]
    return {
        "studies": total,
        "samples": samples,
        "growth_after_100_mib": round(warm[-1]["rss_mib"] - warm[0]["rss_mib"], 1)
        if warm
        else None,
    }


def discovery_footprint(folder: Path) -> dict[str, Any]:
    from medfuse.runtime.dicom import discover_studies

    discover_studies(folder)  # imports, caches
    gc.collect()
    tracemalloc.start(1)
    studies = list(discover_studies(folder).studies)
    gc.collect()
    snap = tracemalloc.take_snapshot()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    n = len(studies)
    files = sum(len(getattr(s, "instances", ())) for st in studies for s in st.series)
    top = [
        {"line": str(st.traceback[0]), "kib_per_study": round(st.size / 1024 / n, 1)}
        for st in snap.statistics("lineno")[:8]
    ]
    return {
        "studies": n,
        "files": files,
        "kib_per_study": round(held / 1024 / n, 1),
        "mib_per_100_studies": round(held / 1024 / 1024 / n * 100, 1),
        "top_lines": top,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=Path, required=True, help="folder of >= 1000 patients")
    ap.add_argument("--small", type=Path, required=True, help="a small folder (e.g. 40 patients)")
    ap.add_argument("--sizes", default="100,300,1000")
    ap.add_argument("--loop-studies", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medfuse-mem-") as d:
        work = Path(d)
        runs = []
        for n in (int(x) for x in args.sizes.split(",")):
            row = run_cli(subset(args.studies, n, work), work)
            print(f"medfuse run on {n}: {row}", file=sys.stderr)
            runs.append(row)
        footprint = discovery_footprint(args.small)
        print(f"discovery holds {footprint['kib_per_study']} KiB per study", file=sys.stderr)
        loop_row = loop(args.small, args.loop_studies, work)
    fp = device_fingerprint()
    doc = {
        "benchmark": "run_memory",
        "note": "shared machine; RSS, not time, is measured here",
        "run": runs,
        "discovery": footprint,
        "loop": loop_row,
        "machine": fp,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"run_memory-{fingerprint_id(fp)}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
