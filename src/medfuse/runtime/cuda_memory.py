"""Host / device memory for the TensorRT backend: the plan (plain code) and the CUDA calls.

:func:`plan_buffers` decides, for every I/O tensor of a batch size, how many bytes it needs and
where it lives — on a Jetson (memory shared by CPU and GPU) in *mapped* pinned host memory whose
device pointer TensorRT reads and writes directly (no copy); on a discrete GPU in pinned host
memory plus a device buffer, with one async copy each way. :class:`CudaMemory` makes those
allocations, streams, events and CUDA graphs through NVIDIA's ``cuda-python``
(``cuda.bindings.runtime``, the binding TensorRT's own samples use since 10.14).

``cuda-python`` is imported only when :class:`CudaMemory` is created. The CUDA paths are
type-checked only and have **not yet run on real hardware** (see docs/tensorrt.md).
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import BackendError, MissingDependencyError

__all__ = [
    "ALIGNMENT",
    "BufferPlan",
    "CudaMemory",
    "HostBuffer",
    "IOTensor",
    "PlannedBuffer",
    "host_array",
    "io_tensors_from_spec",
    "plan_buffers",
]

logger = logging.getLogger(__name__)

ALIGNMENT = 256  # cudaMalloc's alignment; TensorRT wants at least 256-byte aligned I/O
Mode = Literal["input", "output"]


@dataclass(frozen=True)
class IOTensor:
    """An engine I/O tensor: name, direction, numpy dtype name, shape without the batch axis."""

    name: str
    mode: Mode
    dtype: str
    sample_shape: tuple[int, ...]


def io_tensors_from_spec(spec: ModelSpec) -> tuple[IOTensor, ...]:
    """The I/O tensors a bundle's spec declares (outputs are float32 unless an engine says so)."""
    ins = tuple(IOTensor(i.name, "input", i.dtype, i.sample_shape()) for i in spec.inputs)
    outs = tuple(
        IOTensor(o.name, "output", "float32", tuple(int(d) for d in o.shape[1:]))
        for o in spec.outputs
    )
    return ins + outs


@dataclass(frozen=True)
class PlannedBuffer:
    """One tensor's buffers for one batch size.

    ``host`` is ``"mapped"`` (pinned, mapped into the GPU's address space: bound directly) or
    ``"pinned"`` (page-locked, copied to/from ``device`` asynchronously). ``alloc_bytes`` is
    ``nbytes`` rounded up to :data:`ALIGNMENT`.
    """

    name: str
    mode: Mode
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    alloc_bytes: int
    host: Literal["mapped", "pinned"]
    device: bool

    @property
    def needs_copy(self) -> bool:
        """Whether a run copies this tensor between host and device."""
        return self.device


@dataclass(frozen=True)
class BufferPlan:
    """All buffers of one batch size; the totals say what a run allocates and copies."""

    batch: int
    shared_memory: bool
    tensors: tuple[PlannedBuffer, ...]

    @property
    def host_bytes(self) -> int:
        return sum(t.alloc_bytes for t in self.tensors)

    @property
    def device_bytes(self) -> int:
        return sum(t.alloc_bytes for t in self.tensors if t.device)

    @property
    def copies_per_run(self) -> tuple[int, int]:
        """(host→device, device→host) copies a run makes."""
        h2d = sum(1 for t in self.tensors if t.needs_copy and t.mode == "input")
        d2h = sum(1 for t in self.tensors if t.needs_copy and t.mode == "output")
        return h2d, d2h

    def tensor(self, name: str) -> PlannedBuffer:
        return next(t for t in self.tensors if t.name == name)


def _aligned(n: int) -> int:
    return max(ALIGNMENT, -(-n // ALIGNMENT) * ALIGNMENT)


def plan_buffers(
    spec: ModelSpec | Sequence[IOTensor], batch: int, shared_memory: bool
) -> BufferPlan:
    """Plan every I/O buffer for ``batch`` rows.

    Parameters
    ----------
    spec:
        The bundle's model spec, or the engine's I/O tensors (their dtypes win).
    batch:
        Rows in this buffer set (at least 1).
    shared_memory:
        ``True`` on Jetson (integrated GPU): mapped pinned host memory, no device buffers, no
        copies. ``False`` on a discrete GPU: pinned host + device buffer per tensor.

    Raises
    ------
    BackendError
        ``batch`` below 1, or a dtype numpy does not know.
    """
    if batch < 1:
        raise BackendError(f"batch must be at least 1, got {batch}")
    tensors = io_tensors_from_spec(spec) if isinstance(spec, ModelSpec) else tuple(spec)
    planned = []
    for t in tensors:
        try:
            itemsize = np.dtype(t.dtype).itemsize
        except TypeError as exc:
            raise BackendError(f"tensor {t.name!r}: unknown dtype {t.dtype!r}") from exc
        shape = (batch, *t.sample_shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * itemsize
        planned.append(PlannedBuffer(
            name=t.name, mode=t.mode, dtype=t.dtype, shape=shape, nbytes=nbytes,
            alloc_bytes=_aligned(nbytes), host="mapped" if shared_memory else "pinned",
            device=not shared_memory,
        ))
    return BufferPlan(batch=batch, shared_memory=shared_memory, tensors=tuple(planned))


def host_array(ptr: int, shape: tuple[int, ...], dtype: str) -> NDArray[Any]:
    """A numpy array over ``ptr`` (host memory owned elsewhere; keep the owner alive)."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    raw = memoryview((ctypes.c_uint8 * max(nbytes, 1)).from_address(ptr)).cast("B")
    arr: NDArray[Any] = np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dt).reshape(shape)
    return arr


@dataclass(frozen=True)
class HostBuffer:
    """Pinned host memory: its pointer, size, and (when mapped) the GPU's pointer to it."""

    ptr: int
    nbytes: int
    device_ptr: int | None


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python < 12.6 layout
        except ImportError as exc:
            raise MissingDependencyError(
                "cuda-python is needed for TensorRT I/O memory but is not installed; install it "
                "with: pip install 'medfuse[tensorrt]' (it provides cuda-python)"
            ) from exc
    return runtime


class CudaMemory:
    """CUDA runtime calls the TensorRT backend needs, each checked, over ``cuda-python``.

    ``memcpy_count`` counts async copies issued (the mapped Jetson path issues none).
    """

    def __init__(self) -> None:
        self._rt = _cudart()
        self.memcpy_count = 0

    def _check(self, result: Any, what: str) -> Any:
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != int(self._rt.cudaError_t.cudaSuccess):
            name = getattr(err, "name", str(err))
            raise BackendError(f"CUDA {what} failed: {name}")
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    # -- memory ---------------------------------------------------------------------------------

    def host_alloc(self, nbytes: int, *, mapped: bool) -> HostBuffer:
        """Pinned host memory; ``mapped=True`` also maps it for the GPU (Jetson zero-copy)."""
        flags = self._rt.cudaHostAllocMapped if mapped else self._rt.cudaHostAllocDefault
        ptr = int(self._check(self._rt.cudaHostAlloc(nbytes, flags), "cudaHostAlloc"))
        dptr = None
        if mapped:
            dptr = int(self._check(self._rt.cudaHostGetDevicePointer(ptr, 0),
                                   "cudaHostGetDevicePointer"))
        return HostBuffer(ptr=ptr, nbytes=nbytes, device_ptr=dptr)

    def free_host(self, buf: HostBuffer) -> None:
        self._check(self._rt.cudaFreeHost(buf.ptr), "cudaFreeHost")

    def device_alloc(self, nbytes: int) -> int:
        return int(self._check(self._rt.cudaMalloc(nbytes), "cudaMalloc"))

    def free_device(self, ptr: int) -> None:
        self._check(self._rt.cudaFree(ptr), "cudaFree")

    def copy_to_device(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync")
        self.memcpy_count += 1

    def copy_to_host(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self._rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync")
        self.memcpy_count += 1

    # -- streams and events ---------------------------------------------------------------------

    def stream_create(self) -> Any:
        """A non-blocking stream (TensorRT warns against the default stream)."""
        return self._check(self._rt.cudaStreamCreateWithFlags(self._rt.cudaStreamNonBlocking),
                           "cudaStreamCreateWithFlags")

    def stream_handle(self, stream: Any) -> int:
        """The integer handle ``execute_async_v3`` takes."""
        return int(stream)

    def stream_sync(self, stream: Any) -> None:
        self._check(self._rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: Any) -> None:
        self._check(self._rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def event_create(self) -> Any:
        return self._check(self._rt.cudaEventCreate(), "cudaEventCreate")

    def event_record(self, event: Any, stream: Any) -> None:
        self._check(self._rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self._check(self._rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def event_destroy(self, event: Any) -> None:
        self._check(self._rt.cudaEventDestroy(event), "cudaEventDestroy")

    # -- CUDA graphs ----------------------------------------------------------------------------

    def begin_capture(self, stream: Any) -> None:
        mode = self._rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self._rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: Any) -> Any:
        return self._check(self._rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")

    def instantiate(self, graph: Any) -> Any:
        return self._check(self._rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, graph_exec: Any, stream: Any) -> None:
        self._check(self._rt.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")

    def graph_destroy(self, graph: Any, graph_exec: Any | None) -> None:
        if graph_exec is not None:
            self._check(self._rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        self._check(self._rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
