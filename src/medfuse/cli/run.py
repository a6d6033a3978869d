"""``medfuse run``: screen a folder of DICOM studies offline into an append-only JSONL.

A thin layer over :func:`medfuse.runtime.screening.screen_studies`: arguments, a progress bar on
stderr, and a summary table (or one JSON object with ``--json``) on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medfuse.cli.options import add_session_options, add_trust_options

__all__ = ["configure", "progress_bar", "run", "summary_tables"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``medfuse run``'s arguments to ``parser``."""
    add_trust_options(parser)
    parser.add_argument(
        "studies", type=Path, metavar="STUDIES_DIR", help="folder of DICOM files (any nesting)"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="results JSONL file (a line per study; the last line of a study counts)"
    )
    parser.add_argument(
        "--csv", type=Path, default=None, help="also write a CSV mirror of the results"
    )
    parser.add_argument(
        "--bundle",
        default=None,
        help="model bundle (folder or zip); default: the shipped reference model",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="K",
        help="reading/preprocessing workers (default: sized with the inference threads to "
        "the cores)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an existing results file; skip studies already in it",
    )
    parser.add_argument(
        "--key-secret-file",
        type=Path,
        default=None,
        metavar="F",
        help="secret for the pseudonymous study keys (default $MEDFUSE_KEY_SECRET_FILE or "
        "~/.config/medfuse/study-key.secret; created on first use)",
    )
    add_session_options(parser, batch=4)
    parser.add_argument(
        "--masks",
        type=Path,
        default=None,
        metavar="DIR",
        help="write segmentation label maps as DIR/<study key>.<output>.npy (default: "
        "per-class fractions and volumes in the results only)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``medfuse run``; returns 0 when the run completed (per-study errors included)."""
    from medfuse.runtime.screening import screen_studies

    with progress_bar("screening", quiet=args.json) as on_progress:
        summary = screen_studies(
            args.studies,
            args.out,
            bundle=args.bundle,
            csv_path=args.csv,
            batch_size=args.batch,
            workers=args.workers,
            resume=args.resume,
            key_secret_file=args.key_secret_file,
            backend=args.backend,
            precision=args.precision,
            device=args.device,
            threads=args.threads,
            progress=on_progress,
            masks_dir=args.masks,
        )
    data = summary.to_dict()
    if args.json:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        _print_summary(data)
    return 0


@contextmanager
def progress_bar(what: str, *, quiet: bool = False) -> Iterator[Callable[[Any], None]]:
    """The CLI's progress bar (:mod:`medfuse.cli.progress`) fed from ``ScreeningProgress``:
    count, ETA, rate, studies without input and errors."""
    from medfuse.cli.progress import progress_bar as bar

    with bar(what, quiet=quiet) as update:

        def on_progress(p: Any) -> None:
            update(
                p.done,
                p.total,
                f"{p.studies_per_s:.2f} studies/s · {p.not_usable} no input · {p.errors} errors",
            )

        yield on_progress


def summary_tables(data: Mapping[str, Any]) -> list[Any]:
    """Rich tables of a screening summary: results by status and class, reasons, warnings,
    skipped files, throughput."""
    from rich.table import Table

    counts = Table(title="results", show_header=True)
    counts.add_column("")
    counts.add_column("studies", justify="right")
    for status, n in sorted(data["by_status"].items()):
        counts.add_row(f"status {status}", str(n))
    for cls, n in sorted(data["by_class"].items(), key=lambda kv: -kv[1]):
        counts.add_row(f"predicted {cls}", str(n))
    for etype, n in sorted(data["errors_by_type"].items()):
        counts.add_row(f"error {etype}", str(n))
    tables = [counts]
    if data.get("reasons"):
        reasons = Table(title="why studies got no result (input: reason)", show_header=True)
        reasons.add_column("input: reason")
        reasons.add_column("studies", justify="right")
        for what, n in data["reasons"].items():
            reasons.add_row(what, str(n))
        tables.append(reasons)
    if data.get("warnings"):
        warned = Table(title="warnings", show_header=True)
        warned.add_column("code")
        warned.add_column("studies", justify="right")
        for code, n in sorted(data["warnings"].items()):
            warned.add_row(code, str(n))
        tables.append(warned)
    if data["skipped_files"]:
        skipped = Table(title="files skipped", show_header=True)
        skipped.add_column("reason")
        skipped.add_column("files", justify="right")
        for reason, n in sorted(data["skipped_files"].items()):
            skipped.add_row(reason, str(n))
        tables.append(skipped)
    run_t = Table(title="run", show_header=False)
    run_t.add_column("")
    run_t.add_column("", justify="right")
    run_t.add_row("studies found", str(data["studies_found"]))
    run_t.add_row("already in results", str(data["already_done"]))
    run_t.add_row("screened now", str(data["screened"]))
    run_t.add_row(
        "throughput",
        f"{data.get('studies_per_s_wall', 0.0):.2f} studies/s in {data.get('wall_s', 0.0):.1f} s",
    )
    run_t.add_row("  screening loop", f"{data['studies_per_s']:.2f} studies/s")
    # where the work went (stages overlap, so the seconds add up to more than the wall time)
    n = max(int(data["screened"]), 1)
    for stage, secs in (data.get("time_split_s") or {}).items():
        run_t.add_row(stage.replace("_", " "), f"{secs:.1f} s ({1e3 * secs / n:.1f} ms/study)")
    model = data.get("model") or {}
    if model:
        run_t.add_row(
            "model",
            " ".join(
                str(model[k]) for k in ("name", "version", "variant", "backend") if k in model
            ),
        )
    tables.append(run_t)
    return tables


def _print_summary(data: Mapping[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    for table in summary_tables(data):
        console.print(table)
    console.print(f"results: {data['results_jsonl']}")
    if data.get("results_csv"):
        console.print(f"csv:     {data['results_csv']}")
