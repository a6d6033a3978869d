"""Plain-code decisions of the TensorRT backend: buffer plans and CUDA-graph actions (no GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.onnx_bundles import tiny_spec
from medfuse.bundle import ModelSpec
from medfuse.errors import BackendError
from medfuse.runtime.backends.tensorrt import GraphState, graph_action
from medfuse.runtime.cuda_memory import ALIGNMENT, IOTensor, host_array, plan_buffers


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return tiny_spec()


def test_jetson_plan_is_mapped_and_copy_free(spec: ModelSpec) -> None:
    plan = plan_buffers(spec, 4, shared_memory=True)
    assert plan.copies_per_run == (0, 0) and plan.device_bytes == 0
    assert {t.host for t in plan.tensors} == {"mapped"}
    ct = plan.tensor("ct")
    assert ct.shape == (4, 2, 4, 8, 8) and ct.nbytes == 4 * 2 * 4 * 8 * 8 * 4


def test_dgpu_plan_copies_each_tensor_once(spec: ModelSpec) -> None:
    plan = plan_buffers(spec, 2, shared_memory=False)
    assert plan.copies_per_run == (2, 2)
    assert {t.host for t in plan.tensors} == {"pinned"}
    assert plan.device_bytes == plan.host_bytes
    assert all(t.alloc_bytes % ALIGNMENT == 0 and t.alloc_bytes >= t.nbytes for t in plan.tensors)
    assert plan.tensor("presence").alloc_bytes == ALIGNMENT  # 8 bytes rounded up


def test_engine_dtypes_win() -> None:
    io = (IOTensor("x", "input", "float16", (3, 4)), IOTensor("y", "output", "int32", (2,)))
    plan = plan_buffers(io, 3, shared_memory=False)
    assert plan.tensor("x").nbytes == 3 * 12 * 2 and plan.tensor("y").nbytes == 3 * 2 * 4


def test_bad_batch(spec: ModelSpec) -> None:
    with pytest.raises(BackendError, match="at least 1"):
        plan_buffers(spec, 0, shared_memory=True)


def test_host_array_views_foreign_memory() -> None:
    owner = np.zeros(64, dtype=np.uint8)
    view = host_array(owner.ctypes.data, (4, 4), "float32")
    view[1, 2] = 3.5
    assert owner.view(np.float32)[6] == 3.5


def test_graph_lifecycle() -> None:
    state = GraphState()
    assert graph_action(state, enabled=True, static_shapes=True) == "plain"  # warm-up
    state.runs = 1
    assert graph_action(state, enabled=True, static_shapes=True) == "capture"
    state.captured = True
    assert graph_action(state, enabled=True, static_shapes=True) == "replay"


@pytest.mark.parametrize(("enabled", "static", "failed"), [
    (False, True, False), (True, False, False), (True, True, True)])
def test_graph_falls_back(enabled: bool, static: bool, failed: bool) -> None:
    state = GraphState(runs=5, failed=failed)
    assert graph_action(state, enabled=enabled, static_shapes=static) == "plain"
