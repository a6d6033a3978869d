"""What hardware this test machine has (shared by conftest's skips and the tests themselves)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path


def has_gpu() -> bool:
    """An NVIDIA GPU (nvidia-smi or a device node) or a Jetson (Tegra release file)."""
    if shutil.which("nvidia-smi") is None and not Path("/dev/nvidia0").exists():
        return Path("/etc/nv_tegra_release").exists()
    return True


def has_tensorrt() -> bool:
    """TensorRT importable on a machine with a GPU."""
    try:
        return importlib.util.find_spec("tensorrt") is not None and has_gpu()
    except (ImportError, ValueError):
        return False
