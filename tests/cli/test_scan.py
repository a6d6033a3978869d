"""``medfuse scan`` end to end in a subprocess: the table, the headline, ``--json``, exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from helpers import screening_fixtures as fx


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic patients, pydicom's dicomdirtests tree, and a truncated X-ray study."""
    from medfuse.synthetic import generate_studies

    root = tmp_path_factory.mktemp("scan") / "in"
    generate_studies(root, 2, seed=4)
    fx.make_error_study(root)
    tree = get_testdata_file("dicomdirtests/DICOMDIR")
    assert tree is not None
    shutil.copytree(Path(tree).parent, root / "dicomdirtests")
    return root


def _scan(args: list[str], tmp: Path, columns: int = 160) -> subprocess.CompletedProcess[str]:
    env = fx.cli_env(tmp) | {"COLUMNS": str(columns)}
    return subprocess.run(
        [*fx.CLI, "scan", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_scan_prints_each_study_and_the_headline_in_80_columns(
    studies: Path, tmp_path: Path
) -> None:
    proc = _scan([str(studies)], tmp_path, columns=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    headline = lines[-1]
    assert headline.startswith("9 studies: 3 usable, 5 no usable input, 1 error — ")
    assert "too_few_frames" in proc.stdout and "mixed_orientation" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_scan_json_has_the_summary_and_every_study(studies: Path, tmp_path: Path) -> None:
    proc = _scan([str(studies), "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    summary, found = data["summary"], data["studies"]
    assert summary["studies_found"] == len(found) == 9
    assert summary["by_status"] == {"usable": 3, "no_usable_input": 5, "error": 1}
    assert summary["reasons"]["ct: too_few_frames"] == 2
    error = next(s for s in found if s["status"] == "error")
    assert error["provenance"]["inputs"]["xr"]["reason"] == "pixel_length"
    for study in found:
        assert set(study) == {"study", "status", "provenance", "warnings"}
        assert len(study["study"]) == 32  # the same pseudonymous key as medfuse run's records


def test_scan_of_a_missing_folder_exits_2_and_of_no_dicom_exits_1(tmp_path: Path) -> None:
    missing = _scan([str(tmp_path / "absent")], tmp_path)
    assert missing.returncode == 2 and "studies folder does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    empty = _scan([str(tmp_path / "empty")], tmp_path)
    assert empty.returncode == 1 and "no DICOM image study found" in empty.stderr
    assert "Traceback" not in missing.stderr + empty.stderr
