"""``medfuse demo``: synthetic studies through the shipped model on ONNX Runtime (CPU).

Generates a few synthetic multimodal studies (real DICOM files, no patient) into a cache folder,
reuses them on later runs, screens them with the shipped reference bundle and prints one row per
study and where the result files are. Needs only the base install: no torch, no onnx package.

Cache: ``$MEDFUSE_CACHE_DIR`` (default ``~/.cache/medfuse``; the one cache folder of medfuse) holds ``demo-studies/`` (reused while its
marker file says it is complete and has the requested number of studies) and, unless ``--out``
says otherwise, ``demo-results/`` (rewritten on every run).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfuse._paths import CACHE_ENV, cache_dir
from medfuse.cli.options import add_trust_options
from medfuse.errors import UsageError

if TYPE_CHECKING:
    from medfuse.runtime.results import ResultRecord

__all__ = ["cache_root", "configure", "ensure_demo_studies", "run"]

log = logging.getLogger(__name__)

_MARKER = ".medfuse-demo.json"
_DEMO_SEED = 7
_FORMAT = 1  # bump to regenerate caches written by an older layout


def cache_root() -> Path:
    """medfuse's cache folder (:func:`medfuse._paths.cache_dir`)."""
    return cache_dir()


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``medfuse demo``'s arguments to ``parser``."""
    add_trust_options(parser)
    parser.add_argument(
        "--studies", type=int, default=8, metavar="N", help="synthetic studies (default 8)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="results folder (default: <cache>/demo-results)",
    )
    parser.add_argument(
        "--bundle", default=None, help="model bundle; default: the shipped reference model"
    )
    parser.add_argument(
        "--json", action="store_true", help="print results and summary as one JSON object"
    )


def ensure_demo_studies(folder: Path, studies: int) -> Path:
    """Synthetic studies in ``folder``: reused when complete, else generated (atomically).

    Parameters
    ----------
    folder:
        Where the studies live. Generation writes to a sibling temporary folder and renames it,
        so an interrupted run never leaves a half-written cache behind.
    studies:
        Number of synthetic patients (one study each).
    """
    want = {"format": _FORMAT, "studies": studies, "seed": _DEMO_SEED}
    marker = folder / _MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == want:
                log.info("demo: reusing %d cached synthetic studies", studies)
                return folder
        except (OSError, ValueError):
            pass
    if folder.exists() and not marker.is_file():
        raise UsageError(
            f"the demo cache folder {folder} exists but was not written by medfuse demo; "
            f"remove it or set {CACHE_ENV} to another folder"
        )
    from medfuse.synthetic import generate_studies

    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log.info("demo: generating %d synthetic studies", studies)
    generate_studies(tmp, studies, seed=_DEMO_SEED)
    (tmp / _MARKER).write_text(json.dumps(want))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def run(args: argparse.Namespace) -> int:
    """Run ``medfuse demo``."""
    from medfuse._paths import preflight, writing
    from medfuse.cli.run import progress_bar
    from medfuse.runtime.results import read_results
    from medfuse.runtime.results.lock import ResultsLock
    from medfuse.runtime.screening import screen_studies

    if not 1 <= args.studies <= 1000:
        raise UsageError(f"--studies {args.studies}: give a number from 1 to 1000")
    root = cache_root()
    out_dir = Path(args.out) if args.out is not None else root / "demo-results"
    preflight(folders={CACHE_ENV: root, "--out": out_dir})
    with writing(root / "demo-studies", "write the demo studies in", CACHE_ENV):
        studies = ensure_demo_studies(root / "demo-studies", args.studies)
    jsonl, csv = out_dir / "demo-results.jsonl", out_dir / "demo-results.csv"
    with writing(out_dir, "write the demo results in", "--out"):
        out_dir.mkdir(parents=True, exist_ok=True)
        # a demo still writing there is named (ResultsInUseError) before its file is removed
        ResultsLock(jsonl).acquire().release()
        jsonl.unlink(missing_ok=True)  # the demo's own output: rewritten on every run
    with progress_bar("demo") as on_progress:
        summary = screen_studies(
            studies,
            jsonl,
            bundle=args.bundle,
            csv_path=csv,
            batch_size=4,
            backend="onnxruntime",
            device="cpu",
            progress=on_progress,
        )
    records = list(read_results(jsonl).current)
    data = summary.to_dict()
    if args.json:
        payload = {
            "studies_dir": str(studies),
            "summary": data,
            "results": [r.to_json() for r in records],
        }
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        _print(records, data, studies)
    return 0


def _print(
    records: Sequence[ResultRecord],
    data: Mapping[str, Any],
    studies: Path,
) -> None:
    from medfuse.cli.tables import Column, render_table

    model = data.get("model") or {}
    rows = []
    for rec in records:
        timing = rec.timing_ms
        latency = timing.get("total", sum(timing.values()))
        pred = rec.top_class or (
            f"error: {rec.error_type}" if rec.status == "error" else rec.status
        )
        rows.append(
            [
                str(rec.study)[:10] + "…",
                pred,
                "" if rec.probability is None else f"{rec.probability:.2f}",
                _severity_cell(rec),
                ", ".join(rec.modalities_used) or "-",
                ", ".join(rec.modalities_missing) or "-",
                f"{latency:.0f}",
            ]
        )
    out = render_table(
        (
            Column("study"),
            Column("prediction", key=True),
            Column("p", right=True),
            Column(_severity_header(records), right=True),
            Column("modalities used", "used", "modalities used", wrap=True),
            Column("missing", wrap=True),
            Column("latency ms", "ms", "latency ms", right=True),
        ),
        rows,
        title=f"medfuse demo: {len(records)} synthetic studies, model {model.get('name', '?')}",
    )
    if model:
        out += "model: " + " ".join(
            str(model[k]) for k in ("name", "version", "variant", "backend") if k in model
        )
        out += "\n"
    rate = data.get("studies_per_s_wall", data["studies_per_s"])
    out += f"throughput: {rate:.2f} studies/s (discovery and model start included)\n"
    out += f"studies:    {studies}\nresults:    {data['results_jsonl']}\n"
    if data.get("results_csv"):
        out += f"csv:        {data['results_csv']}\n"
    sys.stdout.write(out)


def _severity_header(records: Sequence[ResultRecord]) -> str:
    unit = next((r.severity_unit for r in records if r.severity_unit), None)
    return "severity" if unit is None else f"severity {unit}"


def _severity_cell(rec: ResultRecord) -> str:
    """The severity as shown: in its unit when the spec gives one (the value the JSONL's
    ``value_in_unit`` and the CSV's ``severity_ml`` hold), else the model's value."""
    if rec.severity_in_unit is not None:
        return f"{rec.severity_in_unit:.1f}"
    return "" if rec.severity is None else f"{rec.severity:.2f}"
