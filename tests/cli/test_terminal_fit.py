"""Every table verb at ``COLUMNS=80``: lines fit, keys a user types back appear whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medfuse.devices.catalog import load_catalog


def _medfuse(*args: str, tmp_path: Path) -> str:
    env = {**os.environ, "COLUMNS": "80", "MEDFUSE_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    # A file path is printed whole so it can be copied: a line that is one label and one
    # path may run past 80 columns; table lines may not.
    too_long = [
        line for line in lines if len(line) > 80 and not line.split()[-1].startswith("/")
    ]
    assert not too_long, too_long
    return proc.stdout


def _first_cells(text: str) -> set[str]:
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def test_devices_keeps_every_device_key_whole(tmp_path: Path) -> None:
    out = _medfuse("devices", tmp_path=tmp_path)
    keys = {d.key for d in load_catalog().devices}
    assert keys <= _first_cells(out), keys - _first_cells(out)
    assert "build --device KEY" in out.replace("\n", " ")


def test_validate_shows_backend_and_variant_whole(tmp_path: Path) -> None:
    out = _medfuse("validate", "--variant", "fp32", "--variant", "int8-cpu", tmp_path=tmp_path)
    rows = [line.split() for line in out.splitlines()]
    assert ["onnxruntime", "fp32"] in [r[:2] for r in rows]
    assert ["onnxruntime", "int8-cpu"] in [r[:2] for r in rows]


def test_inspect_accuracy_is_compact_numbers(tmp_path: Path) -> None:
    out = _medfuse("inspect", tmp_path=tmp_path)
    assert "{" not in out and "auroc_per_class" not in out
    assert "0.8869333333333334" not in out  # no 16-digit floats
    assert "gate passed" in out and "AUROC 0.905" in out
    assert {"fp32", "int8", "int8-cpu", "fp16"} <= _first_cells(out)


def test_demo_keeps_class_names_whole_and_shows_ml(tmp_path: Path) -> None:
    from medfuse.models.specs import CLASSES

    out = _medfuse("demo", "--studies", "4", "--out", str(tmp_path / "demo"), tmp_path=tmp_path)
    predicted = {line.split()[1] for line in out.splitlines()[3:7]}
    assert predicted <= set(CLASSES), predicted
    assert "severity mL" in out
