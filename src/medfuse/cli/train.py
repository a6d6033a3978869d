"""``medfuse train``: train a reference fusion model on labelled synthetic studies.

``medfuse train --config reference --studies DIR --out model.pt [--epochs N] [--seed S]
[--val-fraction 0.2] [--heldout DIR] [--cache DIR] [--json]``

Studies are preprocessed once by the runtime's own preprocessing and cached (default: a
``cache/`` folder beside ``--out``); training shows a progress bar per epoch on stderr. Writes
``model.pt`` and ``<out>.metrics.json`` (validation and, with ``--heldout``, held-out AUROC
and severity MAE).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
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


def _prepare(quiet: bool, label: str, root: Path, spec: Any, cache: Path) -> Any:
    from medfuse.cli.progress import progress_bar
    from medfuse.models.data import prepare_studies
    from medfuse.models.specs import CLASSES

    with progress_bar(f"preprocessing {label}", quiet=quiet) as update:
        return prepare_studies(root, spec, CLASSES, cache_dir=cache, progress=update)


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def run(args: argparse.Namespace) -> int:
    """Preprocess, train, save model.pt and the metrics JSON; print a summary."""
    from rich.console import Console
    from rich.table import Table

    from medfuse._deps import require
    from medfuse.cli.progress import progress_bar

    require("torch", purpose="training")
    from medfuse.models.checkpoint import save_checkpoint
    from medfuse.models.specs import model_spec
    from medfuse.models.training import EpochStats, TrainConfig, train

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
    cache: Path = args.cache if args.cache is not None else out.parent / "cache"
    quiet = bool(args.json)
    spec = model_spec(cfg.config)
    start = time.perf_counter()
    data = _prepare(quiet, "training studies", args.studies, spec, cache)
    heldout = _prepare(quiet, "held-out studies", args.heldout, spec, cache) if args.heldout else None
    prep_seconds = time.perf_counter() - start
    with progress_bar("training epochs", quiet=quiet) as update:
        update(0, cfg.epochs)

        def on_epoch(s: EpochStats) -> None:
            update(s.epoch, cfg.epochs, f"loss {s.train_loss:.3f} val AUROC {s.val_auroc:.3f}")

        result = train(cfg, data, heldout=heldout, on_epoch=on_epoch)
    total_seconds = time.perf_counter() - start
    metrics: dict[str, Any] = dict(result.metrics)
    metrics.update(
        {
            "studies": len(data),
            "studies_skipped": data.skipped,
            "heldout_studies": len(heldout) if heldout is not None else 0,
            "preprocess_seconds": round(prep_seconds, 1),
            "total_seconds": round(total_seconds, 1),
            "history": [vars(h) for h in result.history],
        }
    )
    save_checkpoint(
        out,
        result.module,
        result.spec,
        config=cfg.config,
        metrics=metrics,
        training_config=cfg.to_dict(),
        training_config_hash=cfg.hash(),
    )
    metrics_path = out.with_name(out.stem + ".metrics.json")
    doc = {"config": cfg.to_dict(), "training_config_hash": cfg.hash(), "metrics": metrics}
    metrics_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if args.json:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
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
        f"best epoch {metrics['best_epoch']} of {cfg.epochs}; preprocessing {prep_seconds:.0f} s, "
        f"total {total_seconds:.0f} s; metrics in {metrics_path}"
    )
    return 0
