"""The bring-your-own-model guide's three examples, measured: export, parity, gate, validate,
INT8-vs-FP32 CPU speed.

Runs every ``$ medfuse …`` line of ``docs/guide-byom.md`` (real CLI subprocesses, in a
scratch folder, each timed), then for each bundle reads the export and quantization reports,
runs ``medfuse validate --json`` and times ONNX Runtime fp32 against int8-cpu on the CPU at
batch 1 and 4 in one run (block-interleaved: per round each variant runs twice untimed then
five times timed; order alternates; median per variant). With ``--full`` two more exports run
at real sizes: ResNet-18 (width 64) and MONAI's DenseNet121-3D, through the same commands with
``--factory-arg``.

Writes ``benchmarks/results/byom_examples-<fingerprint-id>.json`` and prints a table. Run from
the repository root::

    PYTHONPATH=src:tests python benchmarks/byom_examples.py [--full]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort

from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide-byom.md"
ROUNDS = 8
SETTLE, TIMED = 2, 5
FULL = {  # name → extra export arguments appended to that example's export line
    "xray-resnet18-w64": ("xray", ["--factory-arg", "width=64"]),
    "ct-densenet121": ("ct", ["--factory-arg", "full=true"]),
}


def _commands() -> list[list[str]]:
    blocks = re.findall(r"```console\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    lines = [ln[2:] for b in blocks for ln in b.splitlines() if ln.startswith("$ medfuse ")]
    return [shlex.split(ln)[1:] for ln in lines]


def _cli(args: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"medfuse {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0, proc


def _bundle_of(args: list[str]) -> str | None:
    return args[args.index("--out") + 1] if "--out" in args and args[0] == "export" else None


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _time_cpu(bundle: Path, batch: int) -> dict[str, float]:
    """Median ms of fp32 and int8-cpu at ``batch``, block-interleaved in one run."""
    from medfuse.bundle import open_bundle
    from medfuse.export import random_inputs

    b = open_bundle(bundle)
    feeds = random_inputs(b.spec, batch, seed=5)
    sessions = {p: _session(b.variant_file(p)) for p in ("fp32", "int8-cpu")}
    times: dict[str, list[float]] = {p: [] for p in sessions}
    order = list(sessions)
    for r in range(ROUNDS):
        for p in order if r % 2 == 0 else order[::-1]:
            for _ in range(SETTLE):
                sessions[p].run(None, feeds)
            for _ in range(TIMED):
                t0 = time.perf_counter()
                sessions[p].run(None, feeds)
                times[p].append((time.perf_counter() - t0) * 1e3)
    med = {p: statistics.median(v) for p, v in times.items()}
    return {
        "fp32_ms": med["fp32"],
        "int8_cpu_ms": med["int8-cpu"],
        "int8_cpu_speedup": med["fp32"] / med["int8-cpu"],
    }


def _figures(name: str, bundle: Path, export_wall: float, work: Path) -> dict[str, Any]:
    parity = json.loads((bundle / "reports" / "export_parity.json").read_text())
    quant = json.loads((bundle / "reports" / "quantization.json").read_text())
    _, proc = _cli(["validate", str(bundle), "--backend", "onnxruntime", "--json"], work)
    validate = json.loads(proc.stdout)
    gate = {
        p: {
            "passed": v["passed"],
            **{k: v["gate"]["outputs"]["diagnosis"][k] for k in ("agreement", "max_abs_drift")},
            "validate_allowed": v["validate_tolerance"]["max_abs_rel"],
        }
        for p, v in quant["variants"].items()
    }
    return {
        "example": name,
        "export_s_cli": round(export_wall, 2),
        "export_s_exporter": parity["export"]["seconds"],
        "exporter": parity["export"]["exporter"],
        "parity_worst": parity["worst_relative_error"],
        "parity_degenerate": parity["degenerate"],
        "gate": gate,
        "validate": {c["precision"]: c["passed"] for c in validate["checks"]},
        "cpu": {f"batch{b}": _time_cpu(bundle, b) for b in (1, 4)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also ResNet-18 w64 and DenseNet121")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    commands = _commands()
    results = []
    with tempfile.TemporaryDirectory(prefix="byom-bench-") as tmp:
        work = Path(tmp)
        (work / "docs").symlink_to(ROOT / "docs")
        runs: list[tuple[str, list[list[str]]]] = [
            ("setup", [c for c in commands if c[0] == "synth"])
        ]
        for c in commands:
            out = _bundle_of(c)
            if out is not None:
                stem = Path(out).stem
                same = [x for x in commands if out in x or f"{stem}.jsonl" in " ".join(x)]
                runs.append((stem, same))
        if args.full:
            for name, (base, extra) in FULL.items():
                seq = next(s for n, s in runs if n == base)
                renamed = [[a.replace(f"{base}.", f"{name}.") for a in c] for c in seq]
                renamed[0] = renamed[0] + extra
                runs.append((name, renamed))
        for name, seq in runs:
            export_wall = 0.0
            for c in seq:
                wall, _ = _cli(c, work)
                if c[0] == "export":
                    export_wall = wall
                print(f"{name}: medfuse {c[0]} {wall:.1f} s", file=sys.stderr)
            if name != "setup":
                r = _figures(name, work / "work" / f"{name}.medfuse", export_wall, work)
                results.append(r)
    fp = device_fingerprint()
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"byom_examples-{fingerprint_id(fp)}.json"
    doc = {
        "benchmark": "byom_examples",
        "timing": f"ONNX Runtime CPU, 2 threads, {ROUNDS} rounds x {TIMED} timed runs, "
        "block-interleaved, median",
        "machine": fp,
        "results": results,
    }
    out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(
        f"{'example':<20} {'export s':>8} {'parity':>8} {'int8 drift':>10} "
        f"{'validate':>8} {'int8-cpu x':>10}"
    )
    for r in results:
        drift = max(g["max_abs_drift"] for g in r["gate"].values())
        ok = "pass" if all(r["validate"].values()) else "FAIL"
        print(
            f"{r['example']:<20} {r['export_s_cli']:>8.1f} "
            f"{max(r['parity_worst'].values()):>8.1e} {drift:>10.3g} {ok:>8} "
            f"{r['cpu']['batch1']['int8_cpu_speedup']:>10.2f}"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
