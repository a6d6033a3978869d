"""Repeatability: the same ``medfuse bench`` command run twice, back to back, on this machine.

Each run's result carries its own error bar (the stability spread of its last windows). On an
idle machine a second run's medians should land inside it. This suite runs the real CLI in a
subprocess ``--runs`` times (default 2) on the shipped bundle with the default backends and
variants at batch 1 and 4, then applies :func:`medfuse.benchmarks.repeat.check_repeatability`:
per combination, ``difference`` = (largest p50 − smallest p50) / smallest p50 against the
largest spread the runs reported → ``within`` / ``beyond`` / ``unknown``, and an overall verdict.
A ``beyond`` is a finding, not a failure: the file says so and the script exits 0. It exits 1
only when a run fails or the runs turn out not to be repeats (the machine or settings changed).

The 1-minute load average before and after each run is recorded as evidence of how idle the
machine was (it includes the benchmark's own load from the previous run).

Writes ``benchmarks/results/repeatability-<fingerprint-id>.json`` (the id of ``medfuse bench``'s
own result files): the command, the check, and each run's report without its raw samples.

Run: ``python benchmarks/repeatability.py [--runs 2] [--batch 1,4] [--max-seconds 30]
[--window-ms 1000] [--bundle B] [--backend onnxruntime] [--variant fp32] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from medfuse.benchmarks.repeat import check_repeatability
from medfuse.benchmarks.report import BenchReport, read_report
from medfuse.devices.fingerprint import fingerprint_id
from medfuse.errors import MedfuseError

HERE = Path(__file__).resolve().parent


def bench_command(args: argparse.Namespace, out: Path) -> list[str]:
    """The ``medfuse bench`` command line of one run (writes its JSON to ``out``)."""
    cmd = [sys.executable, "-m", "medfuse.cli.main", "bench"]
    if args.bundle is not None:
        cmd.append(str(args.bundle))
    cmd += ["--batch", args.batch, "--max-seconds", str(args.max_seconds)]
    cmd += ["--window-ms", str(args.window_ms), "--stability", str(args.stability)]
    for flag in ("backend", "variant", "threads"):
        value = getattr(args, flag)
        if value:
            cmd += [f"--{flag}", str(value)]
    return [*cmd, "--json", str(out)]


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _finite(value: Any) -> Any:
    """Non-finite floats as ``None`` (JSON has no NaN / Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _summary(report: BenchReport) -> dict[str, Any]:
    """The report without its raw latency samples."""
    doc = report.to_dict()
    for result in doc["results"]:
        result.pop("samples_ms", None)
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=2, help="runs of the same command (default 2)")
    ap.add_argument("--batch", default="1,4", help="batch sizes (default 1,4)")
    ap.add_argument("--max-seconds", type=float, default=30.0, help="per combination (30)")
    ap.add_argument("--window-ms", type=float, default=1000.0, help="window length (1000)")
    ap.add_argument("--stability", type=float, default=0.05, help="spread allowed (0.05)")
    ap.add_argument("--bundle", type=Path, default=None, help="default: the shipped bundle")
    ap.add_argument("--backend", default="", help="default: every available backend")
    ap.add_argument("--variant", default="", help="default: every variant of the bundle")
    ap.add_argument("--threads", type=int, default=None, help="backend CPU threads")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    if args.runs < 2:
        ap.error(f"--runs {args.runs}: a repeatability check needs at least 2 runs")

    reports: list[BenchReport] = []
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="medfuse-repeat-") as tmp:
        for i in range(args.runs):
            out = Path(tmp) / f"run{i + 1}.json"
            cmd = bench_command(args, out)
            print(f"-- run {i + 1}/{args.runs}: medfuse {' '.join(cmd[3:-2])}", flush=True)
            load_before, t0 = _load(), time.perf_counter()
            proc = subprocess.run(cmd, cwd=HERE.parent, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"run {i + 1} failed (exit {proc.returncode})", file=sys.stderr)
                return 1
            reports.append(read_report(out))
            runs.append(
                {
                    "run": i + 1,
                    "wall_s": wall,
                    "loadavg_1min_before": load_before,
                    "loadavg_1min_after": _load(),
                }
            )
    try:
        check = check_repeatability(reports)
    except MedfuseError as exc:
        print(f"not a repeatability result: {exc}", file=sys.stderr)
        return 1

    for row in check.rows:
        print(f"{row.label}: {row.sentence()}")
    print(f"overall: {check.verdict} — {check.summary()}")
    # shared results record no local paths: the bundle by its name (its hashes are in "machine")
    shown = argparse.Namespace(**{**vars(args), "bundle": args.bundle and Path(args.bundle.name)})
    command = ["medfuse", *bench_command(shown, Path("RUN.json"))[3:]]
    doc = {
        "benchmark": "repeatability",
        "command": command,
        "machine": reports[0].fingerprint,
        "check": check.to_dict(),
        "runs": [{**meta, "report": _summary(r)} for meta, r in zip(runs, reports, strict=True)],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"repeatability-{fingerprint_id(reports[0].fingerprint)}.json"
    path.write_text(json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
