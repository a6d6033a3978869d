"""docs/guide-byom.md works as printed: every ``$ medfuse …`` line runs, in order, as a real CLI
subprocess in a scratch folder; then the bundles and results are checked."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("monai")
pytest.importorskip("yaml")
pytest.importorskip("onnxruntime.quantization")

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide-byom.md"
EXAMPLES = ("xray", "ct", "fusion")


def guide_commands() -> list[list[str]]:
    """The ``$ medfuse …`` lines of the guide's console blocks, as argument lists."""
    blocks = re.findall(r"```console\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    lines = [ln[2:] for b in blocks for ln in b.splitlines() if ln.startswith("$ medfuse ")]
    return [shlex.split(ln)[1:] for ln in lines]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the guide once; the scratch folder holds its studies, bundles and results."""
    root = tmp_path_factory.mktemp("guide")
    (root / "docs").symlink_to(ROOT / "docs")
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}")
    for args in guide_commands():
        proc = subprocess.run(
            [sys.executable, "-m", "medfuse.cli.main", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, f"medfuse {' '.join(args)}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr
    return root


def test_the_guide_has_the_three_examples() -> None:
    verbs = [c[0] for c in guide_commands()]
    assert verbs.count("export") == 3 and verbs.count("quantize") == 3
    assert verbs.count("validate") == 3 and verbs.count("run") == 3


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", EXAMPLES)
def test_export_parity_is_real_and_golden_comes_from_studies(work: Path, name: str) -> None:
    bundle = work / "work" / f"{name}.medfuse"
    parity = _json(bundle / "reports" / "export_parity.json")
    assert parity["ok"] and parity["degenerate"] == {}
    assert parity["export"]["exporter"] == "dynamo"
    manifest = _json(bundle / "manifest.json")
    assert {"fp32", "int8", "int8-cpu"} <= set(manifest["variants"])


@pytest.mark.parametrize("name", EXAMPLES)
def test_int8_variants_pass_validate(work: Path, name: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "medfuse.cli.main",
            "validate",
            str(work / "work" / f"{name}.medfuse"),
            "--backend",
            "onnxruntime",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report.get("failures")
    passed = {c["precision"] for c in report["checks"] if c["passed"]}
    assert {"fp32", "int8", "int8-cpu"} <= passed


@pytest.mark.parametrize("name", EXAMPLES)
def test_run_gives_results_without_the_age(work: Path, name: str) -> None:
    lines = (work / "work" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 8
    assert any(r["status"] == "ok" for r in records)
    text = "\n".join(lines)
    assert "PatientAge" not in text and '"age"' not in text  # a scalar input never reaches results
