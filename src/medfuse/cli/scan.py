"""``medfuse scan``: what ``medfuse run`` would use from each study, and why not — headers only.

A thin layer over :func:`medfuse.runtime.scan.scan_studies`: a progress bar on stderr, one row
per study and the totals on stdout (or one JSON object with ``--json``). Run it on a folder
before a long screening run: it reads headers only and loads no model.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from medfuse.cli.options import add_trust_options

if TYPE_CHECKING:
    from medfuse.runtime.scan import ScanSummary, StudyScan

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``medfuse scan``'s arguments to ``parser``."""
    parser.add_argument(
        "studies", type=Path, metavar="STUDIES_DIR", help="folder of DICOM files (any nesting)"
    )
    parser.add_argument(
        "--bundle",
        default=None,
        help="model bundle (folder or zip); default: the shipped reference model",
    )
    parser.add_argument(
        "--key-secret-file",
        type=Path,
        default=None,
        metavar="F",
        help="secret for the pseudonymous study keys (the same keys as medfuse run)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary and every study as one JSON object"
    )
    add_trust_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``medfuse scan``; returns 0 when the scan completed (whatever it found)."""
    from medfuse._paths import preflight
    from medfuse.runtime.scan import scan_studies

    preflight(secret=args.key_secret_file)
    with _file_progress(quiet=args.json) as on_progress:
        summary = scan_studies(
            args.studies,
            bundle=args.bundle,
            key_secret_file=args.key_secret_file,
            progress=on_progress,
        )
    if args.json:
        payload = {"summary": summary.to_dict(), "studies": [s.to_json() for s in summary.studies]}
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        _print(summary)
    return 0


@contextmanager
def _file_progress(quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """The CLI's bar (count, ETA) over the files discovery reads (none when ``quiet``)."""
    from medfuse.cli.progress import progress_bar

    with progress_bar("scanning headers", quiet=quiet) as update:
        yield lambda done, total: update(done, total, "files")


def _uses(scan: StudyScan) -> str:
    """``ct:2 xr:1`` — the series ordinal each input would take."""
    return " ".join(
        f"{name}:{use.series}" for name, use in scan.provenance.inputs.items() if use.present
    )


def _why_not(scan: StudyScan) -> str:
    """Per empty input its reason code; warnings for a usable study."""
    if scan.status == "usable":
        return ", ".join(sorted({w.code for w in scan.provenance.warnings}))
    return ", ".join(
        f"{name}: {use.reason}" for name, use in scan.provenance.inputs.items() if not use.present
    )


def _print(summary: ScanSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="what each study would feed the model", show_lines=False)
    table.add_column("study", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("uses (input:series)", overflow="fold")
    table.add_column("why not / warnings", overflow="fold")
    for scan in summary.studies:
        table.add_row(scan.study[:10] + "…", scan.status, _uses(scan) or "-", _why_not(scan))
    console.print(table)
    if summary.series_reasons:
        series = Table(title="series not used, in studies without a result", show_header=True)
        series.add_column("modality reason", overflow="fold")
        series.add_column("series", justify="right")
        for what, n in summary.series_reasons.items():
            series.add_row(what, str(n))
        console.print(series)
    if summary.skipped_files:
        console.print(
            "files skipped: "
            + ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped_files.items()))
        )
    console.print(summary.headline())
