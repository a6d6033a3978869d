"""Run every benchmark suite in ``benchmarks/`` and refresh the results table in README.md.

Suites (each runs in its own subprocess, only when its script is present):

- ``bench``: ``medfuse bench`` on the shipped bundle (every available backend × variant,
  batch 1 and 4) → ``results/bench-<fingerprint-id>.{json,md,png}``;
- ``dicom_read``: ``dicom_read.py`` (DICOM read + pixel pipeline vs hand-written pydicom);
- ``session_overhead``: ``session_overhead.py`` (Session vs bare ONNX Runtime; on a GPU with
  TensorRT also vs a hand-written ``execute_async_v3`` loop and ``trtexec`` on the same plan);
- ``run_throughput``: ``run_throughput.py`` (``medfuse run`` studies/s, footprint);
- ``repeatability``: ``repeatability.py`` (``medfuse bench`` twice back to back: do the medians
  agree within the spread the runs report?).

Then the table between ``<!-- results:start -->`` and ``<!-- results:end -->`` in
``benchmarks/README.md`` is rebuilt from every ``results/bench-*.json`` (and a list of the
other suites' result files, with the verdict of each repeatability file).

Run: ``python benchmarks/run_all.py [--only bench,dicom_read] [--quick] [--table-only]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _bench_command(quick: bool) -> list[str]:
    from medfuse.benchmarks import device_fingerprint, fingerprint_id

    stem = RESULTS / f"bench-{fingerprint_id(device_fingerprint())}"
    cmd = [
        sys.executable,
        "-m",
        "medfuse.cli.main",
        "bench",
        "--batch",
        "1,4",
        "--json",
        f"{stem}.json",
        "--markdown",
        f"{stem}.md",
        "--plot",
        f"{stem}.png",
    ]
    if quick:
        cmd += ["--max-seconds", "5", "--window-ms", "500"]
    return cmd


def suites(quick: bool) -> dict[str, list[str]]:
    """Suite name → command, for the suites whose scripts are present."""
    out: dict[str, list[str]] = {"bench": _bench_command(quick)}
    quick_args = {
        "dicom_read": ["--iterations", "20"],
        "session_overhead": ["--iterations", "100"],
        "run_throughput": ["--studies", "20"],
        "repeatability": ["--max-seconds", "3", "--window-ms", "300"],
    }
    for name, args in quick_args.items():
        script = HERE / f"{name}.py"
        if script.is_file():
            out[name] = [sys.executable, str(script), *(args if quick else [])]
    return out


def _bench_rows() -> list[str]:
    from medfuse.benchmarks import read_report
    from medfuse.errors import MedfuseError

    rows = []
    for path in sorted(RESULTS.glob("bench-*.json")):
        try:
            report = read_report(path)
        except MedfuseError as exc:
            rows.append(f"| {path.name} | (unreadable: {exc}) |||||||||")
            continue
        for r in report.results:
            mode = "e2e/study" if r.mode == "end_to_end" else "tensor"
            energy = "–" if r.energy_mj is None else f"{r.energy_mj:.2f}"
            rows.append(
                f"| {report.device_label} | {r.backend} | {r.variant} | {r.batch} | {mode} | "
                f"{r.latency_ms.p50:.3f} | {r.latency_ms.p99:.3f} | {r.throughput_per_s:,.1f} | "
                f"{energy} | {'yes' if r.stable else 'NO'} | [{path.name}](results/{path.name}) |"
            )
    return rows


def results_table() -> str:
    """The Markdown that goes between the README markers."""
    lines = [
        "| device | backend | variant | batch | mode | p50 ms | p99 ms | items/s | mJ/item "
        "| stable | file |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---|---|",
        *_bench_rows(),
    ]
    others = sorted(p for p in RESULTS.glob("*.json") if not p.name.startswith("bench-"))
    if others:
        lines += ["", "Other suites:", ""]
        lines += [f"- [{p.name}](results/{p.name}){_verdict(p)}" for p in others]
    return "\n".join(lines)


def _verdict(path: Path) -> str:
    """`` — <verdict>: <summary>`` for a repeatability result file, else nothing."""
    if not path.name.startswith("repeatability-"):
        return ""
    try:
        check = json.loads(path.read_text())["check"]
        return f" — repeatability **{check['verdict']}**: {check['summary']}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f" — (unreadable: {type(exc).__name__})"


def update_readme() -> None:
    """Replace the text between the README's markers with :func:`results_table`."""
    text = README.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{README.name} lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{results_table()}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--only", default="", help="comma list of suites to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--table-only", action="store_true", help="only rebuild the README table")
    args = ap.parse_args(argv)
    failed: list[str] = []
    if not args.table_only:
        available = suites(args.quick)
        wanted = [s for s in args.only.split(",") if s] or list(available)
        unknown = [s for s in wanted if s not in available]
        if unknown:
            ap.error(f"unknown or absent suite(s) {unknown}; present: {', '.join(available)}")
        RESULTS.mkdir(parents=True, exist_ok=True)
        for name in wanted:
            print(f"== {name}: {' '.join(available[name][1:])}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.run(available[name], cwd=HERE.parent).returncode
            print(f"== {name}: exit {rc} in {time.perf_counter() - t0:.1f} s", flush=True)
            if rc != 0:
                failed.append(name)
    update_readme()
    print(f"updated {README.relative_to(HERE.parent)}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
