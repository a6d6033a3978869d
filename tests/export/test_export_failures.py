"""A failed export says why: the root cause of torch's exporters, no ANSI codes, full text on -v."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from medfuse.export import classification, export_onnx, model_spec, radiograph
from medfuse.export.failures import full_text, root_cause, strip_ansi

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "name": "fails",
    "version": "1",
    "inputs": [
        {
            "name": "xray",
            "preprocessing": {
                "selection": {"modalities": ["DX"]},
                "geometry": "image",
                "size": [16, 16],
                "intensity": {"method": "voi"},
            },
        }
    ],
    "outputs": [{"name": "y", "shape": ["batch", 2]}],
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}")
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_missing_package_is_named_without_ansi_or_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    args = ["export", "helpers.byom_nets:needs_missing_package", "--spec", str(spec)]
    proc = _cli(*args, "--out", str(tmp_path / "a.medfuse"))
    assert proc.returncode == 1
    assert "medfuse export: error: ONNX export failed with both exporters" in proc.stderr
    assert (
        "dynamo (torch.export): ModuleNotFoundError: No module named 'medfuse_no_such_package'"
        in proc.stderr
    )
    assert "torchscript: ModuleNotFoundError" in proc.stderr
    assert "\x1b[" not in proc.stderr and "Traceback" not in proc.stderr
    verbose = _cli("-v", *args, "--out", str(tmp_path / "b.medfuse"))
    assert verbose.returncode == 1
    assert "dynamo exporter's full error" in verbose.stderr
    assert "Exception summary" in verbose.stderr  # torch's own text, kept whole
    assert (
        "\x1b[" not in verbose.stderr.split("dynamo exporter's full error")[1].split("WARNING")[0]
    )


def test_data_dependent_branch_is_the_recorded_fallback_reason(tmp_path: Path) -> None:
    from helpers.byom_nets import data_dependent

    spec = model_spec(
        "dd",
        "1",
        inputs=[radiograph("xray", size=(16, 16))],
        outputs=[classification("y", ["a", "b"])],
    )
    result = export_onnx(data_dependent(), spec, tmp_path / "dd.onnx")
    assert result.exporter == "torchscript"
    assert result.fallback_reason is not None
    assert "data-dependent" in result.fallback_reason
    assert "step 1/3" not in result.fallback_reason


def test_root_cause_reads_torch_summary_and_strips_colour() -> None:
    wrapped = RuntimeError(
        "Failed to export. \x1b[96mThis is step 1/3\x1b[0m of exporting.\n\n"
        "## Exception summary\n\n<class 'ImportError'>: no einops\n\n(Refer to the full stack trace)"
    )
    assert root_cause(wrapped) == "<class 'ImportError'>: no einops"
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("\x1b[31mouter\x1b[0m") from inner
    except ValueError as outer:
        assert root_cause(outer) == "KeyError: 'inner'"
        assert "ValueError: outer" in full_text(outer) and "\x1b[" not in full_text(outer)
    assert strip_ansi("\x1b[1;96mbold\x1b[0m") == "bold"
