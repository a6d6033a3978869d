"""Thread sweep: ``medfuse run`` over read workers × intra-op threads × ONNX Runtime spinning.

Each setting is one real ``medfuse run --json`` in a subprocess on the same studies and bundle.
Settings run interleaved (a fresh shuffled order every round) so a busy machine slows all of
them alike; the figures are medians over ``--rounds`` and ratios against the policy's default
(``medfuse run`` with no ``--threads``: :func:`medfuse.runtime.threads.plan_threads`) and
against the setting that approximates the old behaviour (2 workers, intra-op threads = cores,
spinning on).

Spinning is not a CLI option: the subprocess wraps the thread plan of
``medfuse.runtime.session`` to force ``allow_spinning`` (``SWEEP_SPIN=0/1``), everything else
is the real CLI.

Writes ``benchmarks/results/thread_sweep-<host>.json``.
Run: ``python benchmarks/thread_sweep.py --studies DIR [--rounds 3]``
(``medfuse synth --patients 40 --out DIR --seed 3`` makes the study set).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id
from medfuse.runtime.threads import available_cores, plan_threads

_WRAPPER = """
import dataclasses, os, sys
spin = os.environ.get("SWEEP_SPIN")
if spin:
    import medfuse.runtime.session as s
    plan = s.plan_threads
    def forced(*a, **k):
        return dataclasses.replace(plan(*a, **k), allow_spinning=spin == "1")
    s.plan_threads = forced
from medfuse.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def settings(cores: int) -> list[dict[str, Any]]:
    """The grid: default policy, then workers × threads × spinning."""
    grid: list[dict[str, Any]] = [{"name": "policy default", "workers": 2, "threads": None}]
    for w in (1, 2):
        for t in sorted({1, cores}):
            for spin in (True, False):
                grid.append(
                    {
                        "name": f"w{w} t{t} spin {'on' if spin else 'off'}",
                        "workers": w,
                        "threads": t,
                        "spin": spin,
                    }
                )
    return grid


def run_once(
    studies: Path, setting: dict[str, Any], tmp: Path, bundle: str | None
) -> dict[str, Any]:
    out = tmp / "r.jsonl"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", _WRAPPER, "run", str(studies), "--out", str(out), "--json"]
    cmd += ["--workers", str(setting["workers"]), "--key-secret-file", str(tmp / "secret")]
    if setting["threads"] is not None:
        cmd += ["--threads", str(setting["threads"])]
    if bundle:
        cmd += ["--bundle", bundle]
    env = dict(os.environ)
    env.pop("SWEEP_SPIN", None)
    if "spin" in setting:
        env["SWEEP_SPIN"] = "1" if setting["spin"] else "0"
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"medfuse run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads(proc.stdout)
    return {
        "wall_s": round(wall, 3),
        "loop_studies_per_s": summary["studies_per_s"],
        "whole_studies_per_s": round(summary["total"] / wall, 3),
        "ok": summary["by_status"].get("ok", 0),
        "load_1min": round(load, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--studies", type=Path, required=True)
    p.add_argument("--bundle", default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    cores = available_cores()
    grid = settings(cores)
    runs: dict[str, list[dict[str, Any]]] = {s["name"]: [] for s in grid}
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for r in range(args.rounds):
            order = grid[:]
            rng.shuffle(order)
            for s in order:
                res = run_once(args.studies, s, tmp, args.bundle)
                runs[s["name"]].append(res)
                print(
                    f"round {r + 1} {s['name']:<22} {res['wall_s']:6.2f} s whole, "
                    f"{res['loop_studies_per_s']:6.2f} loop studies/s",
                    file=sys.stderr,
                )
    rows = []
    for s in grid:
        rs = runs[s["name"]]
        rows.append(
            {
                **s,
                "median_wall_s": round(statistics.median(r["wall_s"] for r in rs), 3),
                "median_whole_studies_per_s": round(
                    statistics.median(r["whole_studies_per_s"] for r in rs), 3
                ),
                "median_loop_studies_per_s": round(
                    statistics.median(r["loop_studies_per_s"] for r in rs), 3
                ),
                "runs": rs,
            }
        )
    base = {r["name"]: r for r in rows}
    old = base[f"w2 t{cores} spin on"]
    default = base["policy default"]
    for r in rows:
        r["whole_vs_old"] = round(
            r["median_whole_studies_per_s"] / old["median_whole_studies_per_s"], 3
        )
        r["loop_vs_old"] = round(
            r["median_loop_studies_per_s"] / old["median_loop_studies_per_s"], 3
        )
        r["whole_vs_default"] = round(
            r["median_whole_studies_per_s"] / default["median_whole_studies_per_s"], 3
        )
    fp = device_fingerprint()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"thread_sweep-{fingerprint_id(fp)}.json"
    doc = {
        "benchmark": "thread_sweep",
        "studies": len([p for p in args.studies.iterdir() if p.is_dir()]),
        "rounds": args.rounds,
        "cores": cores,
        "policy": plan_threads(cores).describe(),
        "old_like": old["name"],
        "note": "shared machine (other engineers' jobs running): compare ratios within this run",
        "machine": fp,
        "results": rows,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'setting':<22} {'whole/s':>8} {'loop/s':>8} {'vs old':>7} {'loop vs old':>11}")
    for r in rows:
        print(
            f"{r['name']:<22} {r['median_whole_studies_per_s']:8.2f} "
            f"{r['median_loop_studies_per_s']:8.2f} {r['whole_vs_old']:7.3f} {r['loop_vs_old']:11.3f}"
        )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
