"""``medfuse bench``: per-device latency of a bundle, and ``medfuse bench compare`` across devices.

::

    medfuse bench [BUNDLE] [--backend onnxruntime,tensorrt] [--variant fp32,int8] [--batch 1,4,8]
                  [--studies DIR] [--json out.json] [--markdown out.md] [--plot out.png]
                  [--max-seconds S] [--window-ms W] [--stability 0.05]
    medfuse bench --all [BUNDLE] [--quick] [--batch N] [--json FILE|-] [--markdown FILE|-]
                  [--plot out.png]
    medfuse bench compare A.json B.json ... [--allow-different-bundles] [--json/--markdown/--plot]

``--all`` is the overview (:func:`medfuse.benchmarks.overview.run_overview`): one table of every
variant × backend available here with file size, the manifest's gate figures, golden-vector
validation on this machine, p50 / p99 latency, throughput, and which variant
``precision="auto"`` picks here and why. ``-`` as a ``--json`` / ``--markdown`` file means
stdout (the table then stays off stdout).

A thin layer over :func:`medfuse.benchmarks.run_benchmark` and
:func:`medfuse.benchmarks.compare_reports`. When the compared files come from one machine with
one bundle and the same settings, ``compare`` also reports whether they repeat within their
reported spread (:func:`medfuse.benchmarks.repeat.check_repeatability`); exit code 0 either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medfuse._paths import writing
from medfuse.cli.options import add_session_options, add_trust_options, names
from medfuse.cli.output import to_stdout, write_output
from medfuse.cli.progress import progress_bar
from medfuse.cli.tables import Column, render_table, terminal_width
from medfuse.errors import UsageError

__all__ = ["bench_text", "configure", "overview_text", "run"]


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
    add_session_options(parser, many=True, batch=1, threads_help="backend CPU threads")
    parser.add_argument(
        "--studies",
        type=Path,
        default=None,
        metavar="DIR",
        help="also measure end to end on this folder of DICOM studies (discovery + predict)",
    )
    parser.add_argument(
        "--all",
        dest="overview",
        action="store_true",
        help="overview: every variant x available backend with size, gate figures, validation "
        "here, p50/p99, throughput and what precision=auto picks",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="with --all: short measurement windows (under a minute on 2 cores)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="FILE", help="write JSON (- = stdout)"
    )
    parser.add_argument(
        "--markdown", type=Path, default=None, metavar="FILE", help="write Markdown (- = stdout)"
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
    if args.overview:
        return _overview(args, target[0] if target else None)
    if args.quick:
        raise UsageError("--quick goes with --all (the overview); for one bench use --max-seconds")
    if not 0.0 < args.stability < 1.0:
        raise UsageError(f"--stability {args.stability}: give a fraction in (0, 1), e.g. 0.05")
    if args.max_seconds <= 0 or args.window_ms <= 0:
        raise UsageError("--max-seconds and --window-ms must be positive")
    from medfuse.benchmarks import BenchConfig, markdown_table, run_benchmark
    from medfuse.benchmarks.report import json_safe

    config = BenchConfig(
        bundle=target[0] if target else None,
        backends=names(args.backends),
        variants=names(args.variants),
        batches=tuple(args.batch),
        studies=args.studies,
        window_ms=args.window_ms,
        max_seconds=args.max_seconds,
        stability=args.stability,
        device=args.device,
        threads=args.threads,
        workers=args.workers,
        power=not args.no_power,
    )
    quiet = to_stdout(args.json) or to_stdout(args.markdown)
    with progress_bar("bench", quiet=quiet) as update:
        report = run_benchmark(config, counted=update)
    if not quiet:
        sys.stdout.write(bench_text(report))
    for s in report.skipped:
        _err(f"skipped {s['backend']} / {s['variant']}: {s['reason']}")
    if any(not r.stable for r in report.results):
        _err("some results did not stabilise within --max-seconds (marked NO)")
    if args.json:
        write_output(args.json, json.dumps(json_safe(report.to_dict()), indent=2) + "\n", "--json")
    if args.markdown:
        write_output(args.markdown, markdown_table(report), "--markdown")
    if args.plot:
        from medfuse.benchmarks.plots import plot_report

        with writing(args.plot, flag="--plot"):
            plot_report(report, args.plot)
    return 0


def _err(text: str) -> None:
    print(f"medfuse bench: {text}", file=sys.stderr)


_BENCH_COLUMNS = (
    Column("backend", key=True),
    Column("variant", key=True),
    Column("batch", "b", right=True),
    Column("mode", drop=2),
    Column("p50 ms", "p50", "p50 latency ms", right=True),
    Column("p90 ms", "p90", "p90 latency ms", right=True, drop=3),
    Column("p99 ms", "p99", "p99 latency ms", right=True),
    Column("mean ms", "mean", "mean latency ms", right=True, drop=4),
    Column("throughput/s", "it/s", "items per second", right=True),
    Column("stable", wrap=True),
    Column("mJ/item", "mJ", "energy per item, mJ", right=True, drop=5),
)


def bench_text(report: Any, width: int | None = None) -> str:
    """``medfuse bench``'s table, fitted to the terminal."""
    from medfuse.benchmarks.report import result_rows

    return render_table(
        _BENCH_COLUMNS,
        result_rows(report.results),
        width=width,
        title=f"medfuse bench — {report.device_label}",
    )


_OVERVIEW_SHORT = {
    "variant": ("variant", True, 0),
    "backend": ("backend", True, 0),
    "device": ("dev", False, 3),
    "size": ("size", False, 0),
    "agree": ("agr", False, 0),
    "AUROC drop": ("drop", False, 2),
    "drift": ("drift", False, 1),
    "valid": ("ok", False, 0),
    "p50 ms": ("p50", False, 0),
    "p99 ms": ("p99", False, 0),
    "items/s": ("it/s", False, 0),
    "auto": ("auto", False, 0),
}


def overview_text(ov: Any, width: int | None = None) -> str:
    """The overview table, fitted to the terminal, with the auto pick under it."""
    from medfuse.benchmarks.overview import (
        OVERVIEW_HEADERS,
        TEXT_COLUMNS,
        auto_sentence,
        overview_cells,
    )

    columns = []
    for header, meaning in OVERVIEW_HEADERS:
        short, key, drop = _OVERVIEW_SHORT[header]
        columns.append(
            Column(
                header,
                short=short,
                meaning=meaning,
                right=header not in TEXT_COLUMNS,
                key=key,
                drop=drop,
            )
        )
    rows = [overview_cells(r) for r in ov.rows]
    mode = "quick" if ov.settings.get("quick") else "full"
    title = (
        f"{ov.bundle.get('name')} {ov.bundle.get('version')} on {ov.device_label} "
        f"({mode} measurement, batch {ov.settings.get('batch')})"
    )
    limit = width if width is not None else terminal_width()
    text = render_table(columns, rows, width=limit, title=title)
    notes = [auto_sentence(ov)]
    if any(r.stable is False for r in ov.rows):
        notes.append("~ before p50 = latency did not stabilise within the time bound")
    notes += [f"skipped {s['backend']} / {s['variant']}: {s['reason']}" for s in ov.skipped]
    for note in notes:
        text += "\n".join(textwrap.wrap(note, limit)) + "\n"
    return text


def _overview(args: argparse.Namespace, bundle: str | None) -> int:
    from medfuse.benchmarks.overview import OverviewConfig, overview_markdown, run_overview
    from medfuse.benchmarks.report import json_safe

    batches = tuple(args.batch)
    if len(batches) != 1:
        raise UsageError(f"--all measures one batch size; got --batch {batches}")
    config = OverviewConfig(
        bundle=bundle,
        backends=names(args.backends),
        variants=names(args.variants),
        batch=batches[0],
        device=args.device,
        threads=args.threads,
        quick=args.quick,
    )
    quiet = to_stdout(args.json) or to_stdout(args.markdown)
    with progress_bar("bench --all", quiet=quiet) as update:
        ov = run_overview(config, progress=update)
    if not quiet:
        sys.stdout.write(overview_text(ov))
    if args.json:
        write_output(args.json, json.dumps(json_safe(ov.to_dict()), indent=2) + "\n", "--json")
    if args.markdown:
        write_output(args.markdown, overview_markdown(ov), "--markdown")
    if args.plot:
        from medfuse.benchmarks.plots import plot_report

        with writing(args.plot, flag="--plot"):
            plot_report(ov.bench, args.plot)
    return 0


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
        write_output(args.json, json.dumps(doc, indent=2) + "\n", "--json")
    if args.markdown:
        md = compare_markdown(rows)
        write_output(
            args.markdown, md if check is None else md + "\n" + repeat_markdown(check), "--markdown"
        )
    if args.plot:
        from medfuse.benchmarks.plots import plot_compare

        with writing(args.plot, flag="--plot"):
            plot_compare(rows, args.plot)
    return 0
