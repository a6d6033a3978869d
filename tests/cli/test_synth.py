"""``medfuse synth`` end to end in a subprocess."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path


def _synth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", "synth", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_synth_json_summary_and_labels(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    proc = _synth("--patients", "2", "--out", str(out), "--seed", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["patients"] == 2 and summary["seed"] == 4
    assert sum(summary["per_class"].values()) == 2
    with (out / "labels.csv").open(newline="", encoding="utf-8") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert (out / "labels.key").exists()


def test_synth_table_by_default(tmp_path: Path) -> None:
    proc = _synth("--patients", "1", "--out", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    assert "files" in proc.stdout and "labels.csv" in proc.stdout


def test_synth_refuses_foreign_folder_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x", encoding="utf-8")
    proc = _synth("--patients", "1", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "not a previous" in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_synth_rejects_zero_patients_with_exit_2(tmp_path: Path) -> None:
    proc = _synth("--patients", "0", "--out", str(tmp_path / "z"))
    assert proc.returncode == 2
    assert "positive integer" in proc.stderr
