"""``medfuse build`` refuses cleanly where it cannot build (no GPU / no TensorRT)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.onnx_bundles import make_bundle
from medfuse.devices.detect import detect_device


def _build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medfuse.cli.main", "build", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(detect_device().has_gpu, reason="this machine has a GPU")
def test_build_without_gpu_exits_1_with_a_clear_message(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    out = _build(str(bundle.path), "--variant", "fp32")
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert "no NVIDIA GPU" in out.stderr
    assert "JetPack" in out.stderr and "medfuse[tensorrt]" in out.stderr
    assert not any((bundle.path / "engines").iterdir())


def test_build_of_a_missing_bundle_exits_1(tmp_path: Path) -> None:
    out = _build(str(tmp_path / "nothing.medfuse"))
    assert out.returncode == 1 and "not a bundle" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="needs a GPU machine")
@pytest.mark.gpu
def test_build_without_tensorrt_names_the_extra(tmp_path: Path) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    bundle = make_bundle(tmp_path)
    out = _build(str(bundle.path), "--variant", "fp32")
    assert out.returncode == 1 and "medfuse[tensorrt]" in out.stderr
