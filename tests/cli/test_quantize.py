"""``medfuse quantize`` in a subprocess: variants added (exit 0), gate failure (exit 1, unchanged)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.calib_models import fusion_bundle
from medfuse.bundle import open_bundle
from medfuse.synthetic import generate_studies


@pytest.fixture(scope="module")
def calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli-studies") / "calib"
    generate_studies(out, 8, seed=31)
    return out


def _quantize(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "medfuse.cli.main", "quantize", *args]
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=env)


def _fits_80(text: str) -> None:
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    assert "{'" not in text and "| " not in text  # no Python dicts, no raw Markdown


def test_cli_adds_variants(tmp_path: Path, calib: Path) -> None:
    b = fusion_bundle(tmp_path)
    proc = _quantize(
        str(b.path),
        "--calib",
        str(calib),
        "--precision",
        "int8,fp16",
        "--method",
        "minmax",
        "--gate-agreement",
        "0.75",
        "--cache-dir",
        str(tmp_path / "c"),
    )
    assert proc.returncode == 0, proc.stderr
    _fits_80(proc.stdout)
    assert any(line.split()[:2] == ["int8", "yes"] for line in proc.stdout.splitlines() if line)
    assert "gate: agreement >= 0.75, AUROC drop <= 0.01" in proc.stdout
    assert {"int8", "fp16"} <= set(open_bundle(b.path).precisions)


def test_cli_gate_failure_leaves_bundle_unchanged(tmp_path: Path, calib: Path) -> None:
    b = fusion_bundle(tmp_path)
    before = (b.path / "manifest.json").read_bytes()
    proc = _quantize(
        str(b.path),
        "--calib",
        str(calib),
        "--precision",
        "int8",
        "--method",
        "minmax",
        "--gate-max-drift",
        "0",
        "--no-sensitivity",
        "--cache-dir",
        str(tmp_path / "c"),
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("gate failed") == 1, proc.stderr  # said once, not twice
    _fits_80(proc.stdout)
    assert "max drift" in proc.stdout.replace("\n", " ")
    assert (b.path / "manifest.json").read_bytes() == before
