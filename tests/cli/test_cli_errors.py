"""Argument mistakes a new user makes, through the real CLI: each says what is wrong and what
to do, exits 2 (or 1 for a missing bundle), and leaves no file behind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pydicom.data import get_testdata_file

from helpers import screening_fixtures as fx


def _medfuse(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*fx.CLI, *args], capture_output=True, text=True, env=fx.cli_env(tmp_path), timeout=300
    )


def test_run_on_a_file_says_to_give_its_folder(tmp_path: Path) -> None:
    dcm = str(get_testdata_file("CT_small.dcm"))
    out = tmp_path / "r.jsonl"
    proc = _medfuse(["run", dcm, "--out", str(out)], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "is a file, not a folder" in proc.stderr and "give the folder" in proc.stderr
    assert "does not exist" not in proc.stderr
    assert not out.exists()


def test_a_missing_bundle_is_named_with_its_whole_path(tmp_path: Path) -> None:
    (tmp_path / "studies").mkdir()
    missing = tmp_path / "no" / "such.medfuse"
    proc = _medfuse(
        ["run", str(tmp_path / "studies"), "--out", str(tmp_path / "r.jsonl"), "--bundle",
         str(missing)],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"'{missing}' not found" in proc.stderr


def test_run_refuses_a_bare_onnx_before_screening(tmp_path: Path) -> None:
    from medfuse.bundle.reference import reference_bundle_path

    onnx = reference_bundle_path() / "model.fp32.onnx"
    studies = tmp_path / "studies"
    from medfuse.synthetic import generate_studies

    generate_studies(studies, 1, seed=1)
    out = tmp_path / "r.jsonl"
    proc = _medfuse(["run", str(studies), "--out", str(out), "--bundle", str(onnx)], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "bare model file" in proc.stderr and "medfuse export" in proc.stderr
    assert not out.exists()  # refused up front: no empty results file


def test_bench_json_dash_is_stdout(tmp_path: Path) -> None:
    proc = _medfuse(
        ["bench", "--variant", "fp32", "--backend", "onnxruntime", "--max-seconds", "1",
         "--window-ms", "100", "--json", "-"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["kind"] == "medfuse-bench"
    assert not Path("-").exists() and not (tmp_path / "-").exists()
