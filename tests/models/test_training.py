"""Training on synthetic studies: data preparation, determinism, checkpoints, the CLI.

The fast tests train one epoch on eight synthetic patients; the full run that must reach a
held-out AUROC of 0.90 is marked ``slow`` (MEDFUSE_SLOW=1).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medfuse.models import CLASSES, load_checkpoint, model_spec, prepare_studies, save_checkpoint  # noqa: E402
from medfuse.models.training import TrainConfig, _drop_modalities, split_by_study, train  # noqa: E402
from medfuse.synthetic import generate_studies  # noqa: E402


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "studies"
    generate_studies(root, 8, seed=3)
    return root


@pytest.fixture(scope="module")
def data(studies: Path, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("cache")
    return prepare_studies(studies, model_spec("reference"), CLASSES, cache_dir=cache), cache


def test_prepare_uses_runtime_preprocessing_and_labels(data, studies: Path) -> None:
    ds, cache = data
    assert len(ds) == 8 and ds.skipped == 0
    rows = {
        r.split(",")[0]: r.split(",") for r in (studies / "labels.csv").read_text().splitlines()[1:]
    }
    for key, diag, sev in zip(ds.keys, ds.diagnosis, ds.severity_ml, strict=True):
        assert CLASSES[diag] == rows[key][1]
        assert sev == pytest.approx(float(rows[key][2]), abs=1e-3)
        present = set(rows[key][3].split("+"))
        assert ds.inputs["presence"][ds.keys.index(key)][0] == (1.0 if "CT" in present else 0.0)
    assert ds.inputs["ct"].dtype == np.float16 and ds.inputs["ct"].shape == (8, 2, 32, 64, 64)
    files = list(cache.glob("studies-*.npz"))
    assert len(files) == 1
    again = prepare_studies(studies, model_spec("reference"), CLASSES, cache_dir=cache)
    assert again.keys == ds.keys and np.array_equal(again.inputs["mr"], ds.inputs["mr"])


def test_split_is_by_study_and_stratified(data) -> None:
    ds, _ = data
    tr, va = split_by_study(ds, 0.25, seed=0)
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == len(ds)
    assert set(ds.diagnosis[va]) <= set(ds.diagnosis)
    assert split_by_study(ds, 0.25, seed=0)[1].tolist() == va.tolist()


def test_modality_dropout_keeps_one_modality() -> None:
    spec = model_spec("reference")
    batch = {i.name: torch.ones(i.batch_shape(64)) for i in spec.inputs}
    _drop_modalities(batch, spec, 0.95, np.random.default_rng(0))
    presence = batch["presence"]
    assert (presence.sum(1) >= 1).all() and (presence.sum(1) < 3).any()
    for col, name in enumerate(["ct", "mr", "xr"]):
        dropped = presence[:, col] == 0
        assert (batch[name][dropped] == 0).all() and (batch[name][~dropped] == 1).all()


def test_training_is_deterministic_and_checkpoints_round_trip(data, tmp_path: Path) -> None:
    ds, _ = data
    cfg = TrainConfig(epochs=1, batch_size=4, val_fraction=0.25, seed=5)
    a = train(cfg, ds)
    b = train(cfg, ds)
    for (ka, va), (kb, vb) in zip(
        a.module.state_dict().items(), b.module.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb), ka
    assert {"validation", "best_epoch"} <= set(a.metrics)
    path = save_checkpoint(
        tmp_path / "model.pt",
        a.module,
        a.spec,
        config="reference",
        metrics=a.metrics,
        training_config=cfg.to_dict(),
        training_config_hash=cfg.hash(),
    )
    module, ckpt = load_checkpoint(path)
    assert ckpt.spec == a.spec and ckpt.training_config_hash == cfg.hash()
    x = {i.name: torch.randn(i.batch_shape(2)) for i in a.spec.inputs}
    with torch.no_grad():
        assert torch.equal(module(**x)[0], a.module(**x)[0])


def test_config_hash_ignores_threads_only() -> None:
    assert TrainConfig(threads=1).hash() == TrainConfig(threads=2).hash()
    assert TrainConfig(seed=1).hash() != TrainConfig(seed=2).hash()


def test_cli_train_writes_model_and_metrics(studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "run" / "model.pt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medfuse.cli.main",
            "train",
            "--studies",
            str(studies),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--val-fraction",
            "0.25",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert (
        doc["training_config_hash"] == TrainConfig(epochs=1, batch_size=4, val_fraction=0.25).hash()
    )
    assert out.is_file() and (out.parent / "model.metrics.json").is_file()
    assert "auroc_macro" in doc["metrics"]["validation"]


def test_cli_train_without_labels_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medfuse.cli.main",
            "train",
            "--studies",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "m.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "labels.csv" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_full_training_reaches_heldout_auroc(tmp_path: Path) -> None:
    generate_studies(tmp_path / "train", 360, seed=1)  # the shipped model's recipe
    generate_studies(tmp_path / "heldout", 100, seed=2)
    spec = model_spec("reference")
    train_set = prepare_studies(tmp_path / "train", spec, CLASSES)
    heldout = prepare_studies(tmp_path / "heldout", spec, CLASSES)
    result = train(TrainConfig(), train_set, heldout=heldout)
    assert result.metrics["heldout"]["auroc_macro"] >= 0.90
    assert np.isfinite(result.metrics["heldout"]["severity_mae_ml"])
