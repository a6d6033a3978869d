"""``medfuse export`` end to end in a subprocess, on a small model.pt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from medfuse.bundle import open_bundle  # noqa: E402
from medfuse.models import build_model, save_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    module, spec = build_model("reference")
    metrics = {
        "validation": {"n": 10, "auroc_macro": 0.8},
        "heldout": {"n": 20, "auroc_macro": 0.91, "severity_mae_ml": 3.5},
    }
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    return save_checkpoint(
        path,
        module,
        spec,
        config="reference",
        metrics=metrics,
        training_config={"epochs": 1},
        training_config_hash="f00d",
    )


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", "export", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_export_writes_bundle(model_pt: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref.medfuse"
    proc = _export(str(model_pt), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "parity" in proc.stdout and "bundle written" in proc.stdout
    bundle = open_bundle(out)
    acc = dict(bundle.manifest.variants["fp32"].accuracy)
    assert acc["evaluated_on"] == "heldout" and acc["auroc_macro"] == 0.91
    assert bundle.manifest.provenance.training_config_hash == "f00d"
    training = json.loads((out / "reports" / "training.json").read_text())
    assert training["config"] == "reference"


def test_cli_export_json(model_pt: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref.medfuse"
    proc = _export(str(model_pt), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["lint"]["ok"] and doc["parity"]["ok"]
    assert doc["parity"]["export"]["exporter"] == "dynamo"


def test_cli_export_refuses_to_overwrite(model_pt: Path, tmp_path: Path) -> None:
    out = tmp_path / "ref.medfuse"
    out.mkdir()
    proc = _export(str(model_pt), "--out", str(out))
    assert proc.returncode == 1 and "already exists" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_export_rejects_a_non_checkpoint(tmp_path: Path) -> None:
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"not a checkpoint")
    proc = _export(str(bogus), "--out", str(tmp_path / "x.medfuse"))
    assert (
        proc.returncode == 2 and "medfuse checkpoint" in proc.stderr
    ) or "PyTorch file" in proc.stderr
