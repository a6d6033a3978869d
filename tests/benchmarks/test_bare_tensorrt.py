"""``medfuse.benchmarks.bare_tensorrt`` where no TensorRT runs: the refusals. The loop itself runs
only on a GPU (``test_trtexec_gpu.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfuse.benchmarks.bare_tensorrt import BareTensorRT
from medfuse.errors import BackendError, MedfuseError, MissingDependencyError


def _tensorrt_loads() -> bool:
    from medfuse.devices.trt_build import load_tensorrt

    try:
        load_tensorrt()
    except MedfuseError:
        return False
    return True


def test_open_without_tensorrt_names_what_to_install(tmp_path: Path) -> None:
    if _tensorrt_loads():
        pytest.skip("TensorRT is installed here")
    plan = tmp_path / "engine.plan"
    plan.write_bytes(b"not a plan")
    bare = BareTensorRT(plan)
    with pytest.raises(MissingDependencyError, match=r"medfuse\[tensorrt\]"):
        bare.open()
    assert bare.inputs == {} and bare.outputs == {}


def test_run_before_open_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not open"):
        BareTensorRT(tmp_path / "engine.plan").run()


def test_batch_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="at least 1, got 0"):
        BareTensorRT(tmp_path / "engine.plan", batch=0)


def test_close_is_idempotent_without_open(tmp_path: Path) -> None:
    bare = BareTensorRT(tmp_path / "engine.plan")
    bare.close()
    bare.close()
