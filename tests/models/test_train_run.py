"""``train_from_studies``: the API twin of ``medfuse train`` (studies → model.pt + metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from medfuse.models import load_checkpoint
from medfuse.models.train_run import train_from_studies
from medfuse.models.training import TrainConfig
from medfuse.synthetic import generate_studies


def test_writes_checkpoint_and_metrics_and_reports_each_stage(tmp_path: Path) -> None:
    studies, held = tmp_path / "train", tmp_path / "held"
    generate_studies(studies, 8, seed=3)
    generate_studies(held, 4, seed=4)
    seen: list[tuple[str, int, int | None]] = []
    cfg = TrainConfig(epochs=1, batch_size=4, val_fraction=0.25)
    run = train_from_studies(
        studies,
        tmp_path / "run" / "model.pt",
        cfg,
        heldout=held,
        progress=lambda stage, done, total, _detail: seen.append((stage, done, total)),
    )
    assert run.model_path.is_file() and run.metrics_path == tmp_path / "run" / "model.metrics.json"
    doc = json.loads(run.metrics_path.read_text())
    assert doc == json.loads(json.dumps(run.document(), sort_keys=True))
    assert doc["training_config_hash"] == cfg.hash()
    assert doc["metrics"]["studies"] == 8 and doc["metrics"]["heldout_studies"] == 4
    assert "auroc_macro" in doc["metrics"]["heldout"]
    assert (tmp_path / "run" / "cache").is_dir()  # the default cache beside the model
    _, ckpt = load_checkpoint(run.model_path)
    assert ckpt.training_config_hash == cfg.hash()
    stages = list(dict.fromkeys(s for s, _, _ in seen))
    assert stages == [
        "preprocessing training studies",
        "preprocessing held-out studies",
        "training epochs",
    ]
    assert ("training epochs", 1, 1) in seen
