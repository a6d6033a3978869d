"""From labelled study folders to ``model.pt`` and its metrics JSON: what ``medfuse train`` runs.

:func:`train_from_studies` preprocesses the studies with the runtime's own preprocessing (cached),
trains (:func:`medfuse.models.training.train`), assembles the metrics (validation and held-out
figures, study counts, timings, per-epoch history), saves the checkpoint and writes
``<out stem>.metrics.json`` beside it. The CLI only parses arguments and prints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfuse._deps import require

if TYPE_CHECKING:
    from medfuse.models.training import TrainConfig

__all__ = ["TrainRun", "train_from_studies"]

Progress = Callable[[str, int, int | None, str], None]
"""``progress(stage, done, total, detail)``: stages ``"preprocessing training studies"``,
``"preprocessing held-out studies"``, ``"training epochs"``."""


@dataclass(frozen=True)
class TrainRun:
    """What a training run wrote and measured."""

    model_path: Path
    metrics_path: Path
    config: TrainConfig
    metrics: dict[str, Any]
    prep_seconds: float
    total_seconds: float

    def document(self) -> dict[str, Any]:
        """The metrics JSON: ``config``, ``training_config_hash``, ``metrics``."""
        return {
            "config": self.config.to_dict(),
            "training_config_hash": self.config.hash(),
            "metrics": self.metrics,
        }


def train_from_studies(
    studies: str | Path,
    out: str | Path,
    config: TrainConfig,
    *,
    heldout: str | Path | None = None,
    cache: str | Path | None = None,
    progress: Progress | None = None,
) -> TrainRun:
    """Preprocess, train, save ``out`` (model.pt) and its metrics JSON.

    Parameters
    ----------
    studies, heldout:
        Labelled study folders (``medfuse synth`` output); ``heldout`` is evaluated with the
        final weights.
    out:
        Where the checkpoint goes; the metrics go to ``<stem>.metrics.json`` beside it.
    cache:
        Preprocessed-study cache (default: ``cache/`` beside ``out``).
    progress:
        See :data:`Progress`.

    Raises
    ------
    MissingDependencyError
        torch is not installed.
    DataError, UsageError
        Unlabelled or unreadable studies, bad settings.
    """
    require("torch", purpose="training")
    from medfuse.models.checkpoint import save_checkpoint
    from medfuse.models.data import prepare_studies
    from medfuse.models.specs import CLASSES, model_spec
    from medfuse.models.training import EpochStats, train

    out_path = Path(out)
    cache_dir = Path(cache) if cache is not None else out_path.parent / "cache"
    say = progress or (lambda *_: None)
    spec = model_spec(config.config)
    start = time.perf_counter()

    def prepare(label: str, root: str | Path) -> Any:
        stage = f"preprocessing {label}"
        return prepare_studies(
            Path(root),
            spec,
            CLASSES,
            cache_dir=cache_dir,
            progress=lambda done, total: say(stage, done, total, ""),
        )

    data = prepare("training studies", studies)
    held = prepare("held-out studies", heldout) if heldout is not None else None
    prep_seconds = time.perf_counter() - start
    say("training epochs", 0, config.epochs, "")

    def on_epoch(s: EpochStats) -> None:
        say(
            "training epochs",
            s.epoch,
            config.epochs,
            f"loss {s.train_loss:.3f} val AUROC {s.val_auroc:.3f}",
        )

    result = train(config, data, heldout=held, on_epoch=on_epoch)
    total_seconds = time.perf_counter() - start
    metrics: dict[str, Any] = dict(result.metrics)
    metrics.update(
        {
            "studies": len(data),
            "studies_skipped": data.skipped,
            "heldout_studies": len(held) if held is not None else 0,
            "preprocess_seconds": round(prep_seconds, 1),
            "total_seconds": round(total_seconds, 1),
            "history": [vars(h) for h in result.history],
        }
    )
    save_checkpoint(
        out_path,
        result.module,
        result.spec,
        config=config.config,
        metrics=metrics,
        training_config=config.to_dict(),
        training_config_hash=config.hash(),
    )
    run = TrainRun(out_path, out_path.with_name(out_path.stem + ".metrics.json"), config,
                   metrics, prep_seconds, total_seconds)  # fmt: skip
    run.metrics_path.write_text(
        json.dumps(run.document(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return run
