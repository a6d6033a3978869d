"""A variant ``quantize`` wrote passes ``validate`` on the machine that wrote it.

Real CLI subprocesses end to end: ``synth`` → ``export`` of the reference network (random
golden vectors: the case that failed before) → ``inspect`` flags them → ``quantize`` (int8,
int8-cpu, fp16) refreshes them from its calibration studies and records per-variant tolerances
→ ``validate`` passes every variant; then ``export --golden-studies`` keeps its study rows
through a second ``quantize``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime.quantization")

from medfuse.models import build_model, save_checkpoint  # noqa: E402


def _cli(*args: str, timeout: int = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(*args: str) -> str:
    proc = _cli(*args)
    assert proc.returncode == 0, f"{args[0]}: {proc.stderr[-3000:]}"
    return proc.stdout


def _inspect(bundle: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(_ok("inspect", str(bundle), "--json"))
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("golden-roundtrip")
    _ok("synth", "--patients", "10", "--seed", "41", "--out", str(root / "calib"))
    torch.manual_seed(0)
    module, spec = build_model("reference")
    save_checkpoint(
        root / "model.pt",
        module,
        spec,
        config="reference",
        metrics={},
        training_config={"epochs": 0},
        training_config_hash="0" * 8,
    )
    return root


def _quantize(bundle: Path, work: Path, precision: str = "int8,fp16") -> None:
    _ok(
        "quantize",
        str(bundle),
        "--calib",
        str(work / "calib"),
        "--precision",
        precision,
        "--target",
        "both",
        "--gate-agreement",
        "0.5",  # random weights: this test is about validate, not the gate's threshold
        "--no-sensitivity",
        "--no-plots",
        "--cache-dir",
        str(work / "cache"),
    )


def test_random_golden_is_flagged_then_replaced_and_validate_passes(work: Path) -> None:
    bundle = work / "random.medfuse"
    _ok("export", str(work / "model.pt"), "--out", str(bundle))
    before = _inspect(bundle)["golden"]
    assert before["source"] == "random" and before["random"] and "random" in before["warning"]
    assert "warning" in _ok("inspect", str(bundle))  # the table says it too

    _quantize(bundle, work)
    info = _inspect(bundle)
    golden = info["golden"]
    assert golden["source"] == "calibration" and not golden["random"] and golden["warning"] is None
    assert golden["rows"] == {"calibration": 8} and golden["written_by"] == "quantize"
    for p in ("int8", "int8-cpu", "fp16"):
        tol = info["variants"][p]["tolerance"]
        basis = tol["basis"]
        assert tol["max_abs_rel"] == pytest.approx(
            max(basis["floor"], basis["margin"] * basis["measured_max_abs_rel"])
        )

    proc = _cli("validate", str(bundle), "--backend", "onnxruntime", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report["failures"]
    checked = {c["precision"]: c for c in report["checks"]}
    assert set(checked) == {"fp32", "int8", "int8-cpu", "fp16"}
    assert all(c["passed"] for c in checked.values())
    assert checked["int8"]["tolerance"]["source"] == "manifest"
    assert checked["fp32"]["tolerance"]["source"] == "default"


def test_study_golden_rows_survive_quantize(work: Path) -> None:
    bundle = work / "studies.medfuse"
    _ok(
        "export",
        str(work / "model.pt"),
        "--out",
        str(bundle),
        "--golden-studies",
        str(work / "calib"),
        "--golden",
        "3",
    )
    assert _inspect(bundle)["golden"]["rows"] == {"studies": 3}
    _quantize(bundle, work)
    golden = _inspect(bundle)["golden"]
    assert golden["rows"] == {"studies": 3, "calibration": 8}
    assert golden["reference"] == "pytorch+onnxruntime-fp32"
    # a second run (fp16 only) replaces its own calibration rows instead of piling them up,
    # and re-derives the tolerances of the INT8 variants it leaves in place
    before = _inspect(bundle)["variants"]
    _quantize(bundle, work, "fp16")
    info = _inspect(bundle)
    assert info["golden"]["rows"] == {"studies": 3, "calibration": 8}
    for p in ("int8", "int8-cpu"):
        assert info["variants"][p]["sha256"] == before[p]["sha256"]
        assert info["variants"][p]["tolerance"]["basis"]["golden_rows"] == 11
    proc = _cli("validate", str(bundle), "--backend", "onnxruntime")
    assert proc.returncode == 0, proc.stdout[-3000:]
