"""Host / device memory for the TensorRT backend: the plan (plain code) and the CUDA calls.

:func:`plan_buffers` decides, for every I/O tensor of a batch size, how many bytes it needs and
where it lives — on a Jetson (memory shared by CPU and GPU) in *mapped* pinned host memory whose
device pointer TensorRT reads and writes directly (no copy); on a discrete GPU in pinned host
memory plus a device buffer, with one async copy each way.

The CUDA calls that carry out a plan sit behind one interface, :class:`CudaMemory`, with two
implementations picked by :func:`open_cuda_memory`:

- ``cuda-python`` (NVIDIA's binding, the one TensorRT's own samples use since 10.14; what
  ``pip install 'medfuse[tensorrt]'`` installs) — :mod:`medfuse.runtime.cuda_binding_cudapython`;
- ``pycuda`` (the fallback, for Jetson images that ship it) —
  :mod:`medfuse.runtime.cuda_binding_pycuda`.

Neither binding is imported until a memory is opened. The CUDA paths are type-checked only and
have **not yet run on real hardware** (see docs/tensorrt.md).
"""

from __future__ import annotations

import ctypes
import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import BackendError, MissingDependencyError, UsageError

__all__ = [
    "ALIGNMENT",
    "CUDA_BINDINGS",
    "BufferPlan",
    "CudaMemory",
    "HostBuffer",
    "IOTensor",
    "PlannedBuffer",
    "choose_cuda_binding",
    "host_array",
    "io_tensors_from_spec",
    "open_cuda_memory",
    "plan_buffers",
    "select_cuda_binding",
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


# -- the CUDA calls: one interface, two bindings -------------------------------------------------

CUDA_BINDINGS: tuple[str, ...] = ("cuda-python", "pycuda")
"""The CUDA bindings medfuse drives, in the order :func:`open_cuda_memory` tries them."""

# binding → (module whose import proves it is installed, alternative module or None)
_PROBES: dict[str, tuple[str, str | None]] = {
    "cuda-python": ("cuda.bindings.runtime", "cuda.cudart"),  # cuda.cudart: cuda-python < 12.6
    "pycuda": ("pycuda.driver", None),
}


@runtime_checkable
class CudaMemory(Protocol):
    """The CUDA runtime calls the TensorRT backend makes, whichever binding carries them out.

    Every call is checked: a CUDA failure raises :class:`~medfuse.errors.BackendError` naming
    the call. Pointers are plain ``int``; streams, events and graphs are the binding's own
    objects (opaque to the caller) except :meth:`stream_handle`, the integer TensorRT's
    ``execute_async_v3`` takes. ``memcpy_count`` counts async copies issued (the mapped Jetson
    path issues none). Call :meth:`close` once, on the thread that opened the memory, after
    everything it allocated has been freed.
    """

    binding: str
    memcpy_count: int

    def host_alloc(self, nbytes: int, *, mapped: bool) -> HostBuffer:
        """Pinned host memory; ``mapped=True`` also maps it for the GPU (Jetson zero-copy)."""
        ...

    def free_host(self, buf: HostBuffer) -> None:
        """Free memory from :meth:`host_alloc`."""
        ...

    def device_alloc(self, nbytes: int) -> int:
        """Device memory; returns its pointer."""
        ...

    def free_device(self, ptr: int) -> None:
        """Free memory from :meth:`device_alloc`."""
        ...

    def copy_to_device(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        """Queue a host→device copy of ``nbytes`` on ``stream``."""
        ...

    def copy_to_host(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        """Queue a device→host copy of ``nbytes`` on ``stream``."""
        ...

    def stream_create(self) -> Any:
        """A non-blocking stream (TensorRT warns against the default stream)."""
        ...

    def stream_handle(self, stream: Any) -> int:
        """The integer handle ``execute_async_v3`` takes."""
        ...

    def stream_sync(self, stream: Any) -> None:
        """Wait for everything queued on ``stream``."""
        ...

    def stream_destroy(self, stream: Any) -> None:
        """Destroy a stream from :meth:`stream_create`."""
        ...

    def event_create(self) -> Any:
        """A timing event."""
        ...

    def event_record(self, event: Any, stream: Any) -> None:
        """Record ``event`` on ``stream``."""
        ...

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        """GPU time between two recorded events, in milliseconds."""
        ...

    def event_destroy(self, event: Any) -> None:
        """Destroy an event from :meth:`event_create`."""
        ...

    def begin_capture(self, stream: Any) -> None:
        """Start capturing ``stream`` into a CUDA graph (BackendError where unsupported)."""
        ...

    def end_capture(self, stream: Any) -> Any:
        """Stop capturing; returns the graph."""
        ...

    def instantiate(self, graph: Any) -> Any:
        """An executable graph from a captured one."""
        ...

    def launch(self, graph_exec: Any, stream: Any) -> None:
        """Replay an executable graph on ``stream``."""
        ...

    def graph_destroy(self, graph: Any, graph_exec: Any | None) -> None:
        """Destroy a captured graph and its executable form."""
        ...

    def close(self) -> None:
        """Give back what opening the memory took (pycuda: pop its context); idempotent."""
        ...


def _probe(binding: str) -> ImportError | None:
    """``None`` when ``binding`` imports here, else the ImportError that says why not."""
    first, alternative = _PROBES[binding]
    try:
        importlib.import_module(first)
    except ImportError as exc:
        if alternative is None:
            return exc
        try:
            importlib.import_module(alternative)
        except ImportError:
            return exc
    return None


def _check_prefer(prefer: str | None) -> None:
    if prefer is not None and prefer not in CUDA_BINDINGS:
        raise UsageError(
            f"unknown CUDA binding {prefer!r}; use one of {', '.join(CUDA_BINDINGS)} "
            "(or leave it unset to pick the first one installed)"
        )


_INSTALL_HINT = {
    "cuda-python": "pip install 'medfuse[tensorrt]' (installs cuda-python)",
    "pycuda": "use a Jetson image that ships pycuda, or pip install pycuda (it builds from "
    "source and needs the CUDA toolkit on PATH)",
}


def choose_cuda_binding(problems: Mapping[str, str | None], prefer: str | None = None) -> str:
    """Pick a binding from what importing each one gave (plain code, no imports).

    Parameters
    ----------
    problems:
        For each name in :data:`CUDA_BINDINGS`: ``None`` when it imports, else why it does not.
    prefer:
        ``"cuda-python"`` or ``"pycuda"`` to require that one; ``None`` takes cuda-python when
        it imports and pycuda otherwise.

    Raises
    ------
    UsageError
        ``prefer`` is not a known binding.
    MissingDependencyError
        The required binding (or, without ``prefer``, both) cannot be imported; the message
        names the packages and how to install them.
    """
    _check_prefer(prefer)
    wanted = (prefer,) if prefer is not None else CUDA_BINDINGS
    for name in wanted:
        if problems.get(name, "not probed") is None:
            return name
    if prefer is not None:
        raise MissingDependencyError(
            f"the {prefer} CUDA binding was asked for but does not import "
            f"({problems.get(prefer)}); to get it: {_INSTALL_HINT[prefer]}"
        )
    raise MissingDependencyError(
        "TensorRT I/O memory needs a CUDA binding and none imports here "
        f"(cuda-python: {problems.get('cuda-python')}; pycuda: {problems.get('pycuda')}). "
        f"Install cuda-python: {_INSTALL_HINT['cuda-python']}; or, as the alternative, "
        f"{_INSTALL_HINT['pycuda']}."
    )


def select_cuda_binding(prefer: str | None = None) -> str:
    """The binding :func:`open_cuda_memory` would use here (imports it, opens nothing).

    Raises the same errors as :func:`choose_cuda_binding`.
    """
    _check_prefer(prefer)
    wanted = (prefer,) if prefer is not None else CUDA_BINDINGS
    errors: dict[str, ImportError | None] = {}
    for name in wanted:
        errors[name] = _probe(name)
        if errors[name] is None:
            break
    problems = {k: None if e is None else (str(e) or type(e).__name__) for k, e in errors.items()}
    try:
        return choose_cuda_binding(problems, prefer)
    except MissingDependencyError as exc:
        raise exc from errors[wanted[0]]


def open_cuda_memory(prefer: str | None = None) -> CudaMemory:
    """Open CUDA memory through cuda-python when it imports, pycuda otherwise.

    Parameters
    ----------
    prefer:
        ``"cuda-python"`` or ``"pycuda"`` forces that binding; ``None`` picks.

    Returns
    -------
    CudaMemory
        Ready on device 0 (pycuda: device 0's primary context, the one TensorRT uses, is made
        current on this thread). Call :meth:`CudaMemory.close` when done.

    Raises
    ------
    UsageError
        ``prefer`` is not a known binding.
    MissingDependencyError
        No usable binding is installed (the message says what to install).
    BackendError
        The binding imports but CUDA could not be set up (no driver, no device).
    """
    name = select_cuda_binding(prefer)
    memory: CudaMemory
    if name == "cuda-python":
        from medfuse.runtime.cuda_binding_cudapython import CudaPythonMemory

        memory = CudaPythonMemory()
    else:
        from medfuse.runtime.cuda_binding_pycuda import PyCudaMemory

        memory = PyCudaMemory()
    why = "asked for" if prefer else (
        "first choice" if name == CUDA_BINDINGS[0] else "cuda-python does not import")
    logger.info("CUDA binding for TensorRT I/O: %s (%s)", name, why)
    return memory
