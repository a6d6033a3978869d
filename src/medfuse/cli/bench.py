"""``medfuse bench``: per-device latency of a bundle, and ``medfuse bench compare`` across devices.

::

    medfuse bench [BUNDLE] [--backend onnxruntime,tensorrt] [--variant fp32,int8] [--batch 1,4,8]
                  [--studies DIR] [--json out.json] [--markdown out.md] [--plot out.png]
                  [--max-seconds S] [--window-ms W] [--stability 0.05]
    medfuse bench compare A.json B.json ... [--allow-different-bundles] [--json/--markdown/--plot]

A thin layer over :func:`medfuse.benchmarks.run_benchmark` and
:func:`medfuse.benchmarks.compare_reports`. When the compared files come from one machine with
one bundle and the same settings, ``compare`` also reports whether they repeat within their
reported spread (:func:`medfuse.benchmarks.repeat.check_repeatability`); exit code 0 either way.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medfuse._paths import writing
from medfuse.cli.options import add_trust_options
from medfuse.errors import UsageError

__all__ = ["configure", "run"]


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (text or "").split(",") if p.strip())


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(p) for p in _names(text))
    except ValueError as exc:
        raise UsageError(
            f"--batch {text!r}: give comma-separated whole numbers, e.g. 1,4,8"
        ) from exc
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--batch {text!r}: batch sizes must be at least 1")
    return values


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``medfuse bench``'s arguments to ``parser``."""
    add_trust_options(parser)
    parser.add_argument(
        "target",
        nargs="*",
        metavar="BUNDLE | compare FILE.json ...",
        help="bundle to measure (default: the shipped reference bundle), or `compare` followed "
        "by result files of earlier runs",
    )
    parser.add_argument("--backend", default="", help="comma list (default: every available)")
    parser.add_argument("--variant", default="", help="comma list (default: every variant)")
    parser.add_argument("--batch", default="1", help="comma list of batch sizes (default 1)")
    parser.add_argument(
        "--studies",
        type=Path,
        default=None,
        metavar="DIR",
        help="also measure end to end on this folder of DICOM studies (discovery + predict)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write JSON")
    parser.add_argument(
        "--markdown", type=Path, default=None, metavar="FILE", help="write Markdown"
    )
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE", help="write a PNG plot")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=30.0,
        metavar="S",
        help="time bound per combination (default 30)",
    )
    parser.add_argument(
        "--window-ms",
        type=float,
        default=1000.0,
        metavar="W",
        help="measurement window (default 1000)",
    )
    parser.add_argument(
        "--stability",
        type=float,
        default=0.05,
        metavar="F",
        help="last 3 windows must agree within ±F (default 0.05 = ±5%%)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    parser.add_argument("--threads", type=int, default=None, help="backend CPU threads")
    parser.add_argument(
        "--workers", type=int, default=2, help="preprocessing workers end to end (default 2)"
    )
    parser.add_argument(
        "--no-power", action="store_true", help="do not sample tegrastats on Jetson"
    )
    parser.add_argument(
        "--allow-different-bundles",
        action="store_true",
        help="compare: accept results measured on different bundles",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``medfuse bench`` (or its ``compare`` mode); returns the exit code."""
    from medfuse._paths import preflight

    target: Sequence[str] = args.target
    preflight(
        files={"--json": args.json, "--markdown": args.markdown, "--plot": args.plot},
        modules={"--plot": ("matplotlib", "plots")} if args.plot else None,
    )
    if target and target[0] == "compare":
        return _compare(args, [Path(p) for p in target[1:]])
    if len(target) > 1:
        raise UsageError(
            f"bench takes one BUNDLE, got {len(target)} arguments (to compare result files: "
            "medfuse bench compare A.json B.json)"
        )
    if not 0.0 < args.stability < 1.0:
        raise UsageError(f"--stability {args.stability}: give a fraction in (0, 1), e.g. 0.05")
    if args.max_seconds <= 0 or args.window_ms <= 0:
        raise UsageError("--max-seconds and --window-ms must be positive")
    from rich.console import Console

    from medfuse.benchmarks import BenchConfig, markdown_table, rich_table, run_benchmark
    from medfuse.benchmarks.report import write_report

    err = Console(stderr=True)
    config = BenchConfig(
        bundle=target[0] if target else None,
        backends=_names(args.backend),
        variants=_names(args.variant),
        batches=_batches(args.batch),
        studies=args.studies,
        window_ms=args.window_ms,
        max_seconds=args.max_seconds,
        stability=args.stability,
        device=args.device,
        threads=args.threads,
        workers=args.workers,
        power=not args.no_power,
    )
    report = run_benchmark(
        config, progress=lambda line: err.print(f"measuring {line} …", markup=False)
    )
    Console().print(rich_table(report))
    for s in report.skipped:
        err.print(f"skipped {s['backend']} / {s['variant']}: {s['reason']}", markup=False)
    if any(not r.stable for r in report.results):
        err.print("[red]some results did not stabilise within --max-seconds (marked NO)[/red]")
    if args.json:
        with writing(args.json, flag="--json"):
            write_report(report, args.json)
    if args.markdown:
        _write(args.markdown, markdown_table(report), "--markdown")
    if args.plot:
        from medfuse.benchmarks.plots import plot_report

        with writing(args.plot, flag="--plot"):
            plot_report(report, args.plot)
    return 0


def _write(path: Path, text: str, flag: str) -> None:
    with writing(path, flag=flag):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _compare(args: argparse.Namespace, files: list[Path]) -> int:
    if not files:
        raise UsageError("bench compare needs result files: medfuse bench compare A.json B.json")
    from rich.console import Console

    from medfuse.benchmarks.compare import compare_markdown, compare_reports, compare_rich_table
    from medfuse.benchmarks.repeat import (
        check_repeatability,
        repeat_differences,
        repeat_markdown,
    )
    from medfuse.benchmarks.report import read_report

    reports = [read_report(f) for f in files]
    rows = compare_reports(reports, allow_different_bundles=args.allow_different_bundles)
    console = Console()
    console.print(compare_rich_table(rows))
    # Same machine, bundle and settings: the files are repeats, so say whether they agree
    # within their own spread (a report: the exit code stays 0, see docs/decisions.md).
    differences = repeat_differences(reports) if len(reports) > 1 else []
    check = check_repeatability(reports) if len(reports) > 1 and not differences else None
    plain: dict[str, Any] = {"markup": False, "soft_wrap": True}
    if check is not None:
        console.print(f"repeatability ({check.runs} runs, same machine, bundle and settings):")
        for r in check.rows:
            style = {"within": "green", "beyond": "red"}.get(r.verdict, "yellow")
            console.print(f"  {r.label}: {r.sentence()}", style=style, **plain)
        for label in check.unmatched:
            console.print(f"  {label}: not in every run, not compared", **plain)
        console.print(f"overall: {check.verdict} — {check.summary()}", **plain)
    elif differences:
        console.print(
            f"not repeats of one benchmark on one machine ({len(differences)} differences, "
            f"first: {differences[0]}): no repeatability verdict",
            **plain,
        )
    if args.json:
        doc = {
            "rows": [r.to_dict() for r in rows],
            "repeatability": None if check is None else check.to_dict(),
            "not_repeats": differences,
        }
        _write(args.json, json.dumps(doc, indent=2) + "\n", "--json")
    if args.markdown:
        md = compare_markdown(rows)
        _write(
            args.markdown, md if check is None else md + "\n" + repeat_markdown(check), "--markdown"
        )
    if args.plot:
        from medfuse.benchmarks.plots import plot_compare

        with writing(args.plot, flag="--plot"):
            plot_compare(rows, args.plot)
    return 0
