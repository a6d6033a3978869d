"""``medfuse train``: train a reference fusion model on labelled synthetic studies.

``medfuse train --config reference --studies DIR --out model.pt [--epochs N] [--seed S]
[--val-fraction 0.2] [--heldout DIR] [--cache DIR] [--json]``

A thin layer over :func:`medfuse.models.train_run.train_from_studies`. Studies are
preprocessed once by the runtime's own preprocessing and cached (default: a
``cache/`` folder beside ``--out``); training shows a progress bar per epoch on stderr. Writes
``model.pt`` and ``<out>.metrics.json`` (validation and, with ``--heldout``, held-out AUROC
and severity MAE).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``train``'s options to its sub-parser."""
    from medfuse.models.specs import CONFIGS

    parser.add_argument(
        "--config",
        default="reference",
        choices=CONFIGS,
        help="network configuration (default reference)",
    )
    parser.add_argument(
        "--studies",
        type=Path,
        required=True,
        metavar="DIR",
        help="labelled studies (`medfuse synth` output)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="where model.pt goes"
    )
    parser.add_argument(
        "--epochs", type=int, default=36, metavar="N", help="training epochs (default 36)"
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="share of studies held for validation, split by study (default 0.2)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, metavar="B", help="mini-batch size (default 16)"
    )
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (default 3e-3)")
    parser.add_argument(
        "--heldout",
        type=Path,
        default=None,
        metavar="DIR",
        help="independent labelled studies evaluated with the final weights",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="preprocessed-study cache (default: cache/ beside --out)",
    )
    parser.add_argument(
        "--threads", type=int, default=2, metavar="T", help="CPU threads for torch (default 2)"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON on stdout")


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def run(args: argparse.Namespace) -> int:
    """Preprocess, train, save model.pt and the metrics JSON; print a summary."""
    from rich.console import Console
    from rich.table import Table

    from medfuse._deps import require
    from medfuse._paths import preflight, writing
    from medfuse.cli.progress import staged_bars

    preflight(files={"--out": args.out}, folders={"--cache": args.cache})
    require("torch", purpose="training")
    from medfuse.models.train_run import train_from_studies
    from medfuse.models.training import TrainConfig

    cfg = TrainConfig(
        config=args.config,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        val_fraction=args.val_fraction,
        seed=args.seed,
        threads=args.threads,
    )
    out: Path = args.out
    with staged_bars(quiet=bool(args.json)) as update, writing(
        out, "write the model", "--out"
    ):
        result = train_from_studies(
            args.studies, out, cfg, heldout=args.heldout, cache=args.cache, progress=update
        )
    metrics = result.metrics
    if args.json:
        json.dump(result.document(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    table = Table(title=f"trained {cfg.config} → {out}")
    table.add_column("set")
    table.add_column("n", justify="right")
    table.add_column("AUROC (macro)", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("severity MAE (mL)", justify="right")
    for name in ("validation", "heldout"):
        m = metrics.get(name)
        if m:
            table.add_row(
                name,
                str(m["n"]),
                _fmt(m["auroc_macro"]),
                _fmt(m["accuracy"]),
                _fmt(m["severity_mae_ml"]),
            )
    Console().print(table)
    Console().print(
        f"best epoch {metrics['best_epoch']} of {cfg.epochs}; preprocessing "
        f"{result.prep_seconds:.0f} s, total {result.total_seconds:.0f} s; metrics in "
        f"{result.metrics_path}"
    )
    return 0
