"""``medfuse demo`` end to end in a subprocess, with torch and onnx made unimportable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import screening_fixtures as fx

LEAN = fx.BLOCK_HEAVY_IMPORTS + """
from medfuse.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def bundle_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """No option when the shipped bundle is installed (the default is under test), else a tiny one."""
    from medfuse.bundle.reference import reference_bundle_path
    from medfuse.errors import BundleError

    try:
        reference_bundle_path()
    except BundleError:
        return ["--bundle", str(fx.shipped_or_tiny_bundle(tmp_path_factory.mktemp("bundle")))]
    return []


def _demo(args: list[str], env_root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", LEAN, "demo", *args],
        capture_output=True,
        text=True,
        env=fx.cli_env(env_root),
        timeout=300,
    )


def _snapshot(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
    }


def test_demo_screens_synthetic_studies_and_reuses_its_cache(
    bundle_args: list[str], tmp_path: Path
) -> None:
    first = _demo(["--studies", "3", *bundle_args], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    cache = tmp_path / "cache"
    jsonl = cache / "demo-results" / "demo-results.jsonl"
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 3 and all(r["status"] == "ok" for r in records)
    assert all(r["model"]["backend"] == "onnxruntime" for r in records)
    for rec in records:
        assert rec["study"][:10] in first.stdout
        assert rec["outputs"]["diagnosis"]["top"] in first.stdout
    assert str(jsonl) in first.stdout.replace("\n", "")
    studies = cache / "demo-studies"
    before = _snapshot(studies)
    assert len(before) > 10

    second = _demo(["--studies", "3", *bundle_args], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _snapshot(studies) == before  # reused, not regenerated
    assert [json.loads(x)["study"] for x in jsonl.read_text().splitlines()] == [
        r["study"] for r in records
    ]


def test_demo_json_to_a_chosen_folder(bundle_args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    proc = _demo(["--studies", "2", "--out", str(out), "--json", *bundle_args], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    assert len(payload["results"]) == 2
    assert payload["summary"]["by_status"] == {"ok": 2}
    assert Path(payload["summary"]["results_jsonl"]) == out / "demo-results.jsonl"
    assert (out / "demo-results.csv").is_file()


def test_demo_rejects_a_bad_study_count(tmp_path: Path) -> None:
    proc = _demo(["--studies", "0"], tmp_path)
    assert proc.returncode == 2
    assert "--studies" in proc.stderr
