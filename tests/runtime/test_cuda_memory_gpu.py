"""Each installed CUDA binding moves real bytes (skipped without a GPU).

None of these has run yet: medfuse's CI machine has no GPU. On a GPU server or a Jetson, run
``pytest -m gpu tests/runtime/test_cuda_memory_gpu.py``; a binding that is not installed is
skipped, so install both (cuda-python, pycuda) to check both.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import numpy as np
import pytest

from medfuse.errors import BackendError
from medfuse.runtime.cuda_memory import CUDA_BINDINGS, CudaMemory, host_array, open_cuda_memory

pytestmark = pytest.mark.gpu

_MODULE = {"cuda-python": "cuda.bindings.runtime", "pycuda": "pycuda.driver"}
NBYTES = 4096


def _importable(binding: str) -> bool:
    try:
        importlib.import_module(_MODULE[binding])
    except ImportError:
        if binding == "cuda-python":
            try:
                importlib.import_module("cuda.cudart")
            except ImportError:
                return False
            return True
        return False
    return True


@pytest.fixture(params=CUDA_BINDINGS)
def mem(request: pytest.FixtureRequest) -> Iterator[CudaMemory]:
    binding: str = request.param
    if not _importable(binding):
        pytest.skip(f"{binding} is not installed")
    memory = open_cuda_memory(prefer=binding)
    assert memory.binding == binding and isinstance(memory, CudaMemory)
    yield memory
    memory.close()


def _pattern() -> np.ndarray:
    return (np.arange(NBYTES, dtype=np.uint32) * 2654435761 % 251).astype(np.uint8)


def test_pinned_buffer_round_trips_through_the_device(mem: CudaMemory) -> None:
    src = mem.host_alloc(NBYTES, mapped=False)
    dst = mem.host_alloc(NBYTES, mapped=False)
    dev = mem.device_alloc(NBYTES)
    stream = mem.stream_create()
    try:
        expected = _pattern()
        host_array(src.ptr, (NBYTES,), "uint8")[:] = expected
        host_array(dst.ptr, (NBYTES,), "uint8")[:] = 0
        mem.copy_to_device(dev, src.ptr, NBYTES, stream)
        mem.copy_to_host(dst.ptr, dev, NBYTES, stream)
        mem.stream_sync(stream)
        np.testing.assert_array_equal(host_array(dst.ptr, (NBYTES,), "uint8"), expected)
        assert mem.memcpy_count == 2
        assert mem.stream_handle(stream) != 0
    finally:
        mem.stream_destroy(stream)
        mem.free_device(dev)
        mem.free_host(src)
        mem.free_host(dst)


def test_mapped_buffer_is_the_same_bytes_for_the_gpu(mem: CudaMemory) -> None:
    """The mapped (Jetson zero-copy) path: the GPU's pointer reads the host's bytes.

    Valid on a discrete GPU too (mapped pinned memory over PCIe), so it runs on any GPU.
    """
    mapped = mem.host_alloc(NBYTES, mapped=True)
    out = mem.host_alloc(NBYTES, mapped=False)
    stream = mem.stream_create()
    try:
        assert mapped.device_ptr is not None
        expected = _pattern()
        host_array(mapped.ptr, (NBYTES,), "uint8")[:] = expected
        mem.copy_to_host(out.ptr, mapped.device_ptr, NBYTES, stream)
        mem.stream_sync(stream)
        np.testing.assert_array_equal(host_array(out.ptr, (NBYTES,), "uint8"), expected)
    finally:
        mem.stream_destroy(stream)
        mem.free_host(mapped)
        mem.free_host(out)


def test_cuda_graph_replays_a_copy_or_is_refused(mem: CudaMemory) -> None:
    src = mem.host_alloc(NBYTES, mapped=False)
    dst = mem.host_alloc(NBYTES, mapped=False)
    dev = mem.device_alloc(NBYTES)
    stream = mem.stream_create()
    try:
        if mem.binding == "pycuda":
            with pytest.raises(BackendError, match="graphs"):
                mem.begin_capture(stream)
            return
        mem.begin_capture(stream)
        mem.copy_to_device(dev, src.ptr, NBYTES, stream)
        mem.copy_to_host(dst.ptr, dev, NBYTES, stream)
        graph = mem.end_capture(stream)
        graph_exec = mem.instantiate(graph)
        expected = _pattern()
        host_array(src.ptr, (NBYTES,), "uint8")[:] = expected
        mem.launch(graph_exec, stream)
        mem.stream_sync(stream)
        np.testing.assert_array_equal(host_array(dst.ptr, (NBYTES,), "uint8"), expected)
        mem.graph_destroy(graph, graph_exec)
    finally:
        mem.stream_destroy(stream)
        mem.free_device(dev)
        mem.free_host(src)
        mem.free_host(dst)


def test_events_time_a_copy(mem: CudaMemory) -> None:
    src = mem.host_alloc(NBYTES, mapped=False)
    dev = mem.device_alloc(NBYTES)
    stream = mem.stream_create()
    start, end = mem.event_create(), mem.event_create()
    try:
        mem.event_record(start, stream)
        mem.copy_to_device(dev, src.ptr, NBYTES, stream)
        mem.event_record(end, stream)
        mem.stream_sync(stream)
        assert np.isfinite(mem.event_elapsed_ms(start, end))
    finally:
        mem.event_destroy(start)
        mem.event_destroy(end)
        mem.stream_destroy(stream)
        mem.free_device(dev)
        mem.free_host(src)
