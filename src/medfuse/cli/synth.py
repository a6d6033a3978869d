"""``medfuse synth``: write synthetic multimodal studies (CT, MR, X-ray) as DICOM, with labels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``synth``'s options to its sub-parser."""
    parser.add_argument(
        "--patients",
        type=int,
        required=True,
        metavar="N",
        help="number of patients (one study each)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="new or empty folder (or a previous synth output, replaced)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="random seed; the same seed writes the same studies (default 0)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    """Generate the cohort with a progress bar on stderr; print a summary table or JSON."""
    from rich.console import Console
    from rich.table import Table

    from medfuse._paths import preflight, writing
    from medfuse.cli.progress import progress_bar
    from medfuse.synthetic import LABELS_CSV, generate_studies

    preflight(folders={"--out": args.out})
    with progress_bar("synthesising patients", quiet=args.json) as update, writing(
        args.out, "write synthetic studies in", "--out"
    ):
        summary = generate_studies(
            args.out,
            args.patients,
            seed=args.seed,
            progress=lambda done: update(done, args.patients),
        )
    if args.json:
        json.dump(summary.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    table = Table(title=f"synthetic cohort in {summary.out}", show_header=True)
    table.add_column("item")
    table.add_column("count", justify="right")
    for name, n in summary.per_class.items():
        table.add_row(f"class {name}", str(n))
    for name, n in summary.per_modality.items():
        table.add_row(f"modality {name}", str(n))
    table.add_row("series", str(summary.series))
    table.add_row("files", str(summary.files_written))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    Console().print(table)
    Console().print(f"labels: {summary.out / LABELS_CSV} (keys: {summary.out / 'labels.key'})")
    return 0
