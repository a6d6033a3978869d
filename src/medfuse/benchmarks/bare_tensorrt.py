"""Bare TensorRT: the hand-written loop a medfuse session is measured against.

What a user writes without medfuse, following TensorRT's own Python samples
(``samples/python/common_runtime.py``): deserialize the plan with ``trt.Runtime``, create an
execution context, allocate pinned host + device memory per I/O tensor, ``set_input_shape`` /
``set_tensor_address`` once, then per inference host→device copies, ``execute_async_v3`` on a
non-default stream, device→host copies and a stream synchronisation. No validation, no CUDA
graphs, no NaN check. The CUDA calls go through :func:`medfuse.runtime.cuda_memory.open_cuda_memory`
(cuda-python, else pycuda) — the same thin wrappers the TensorRT backend uses, each one CUDA
runtime call plus its error check, which is what hand-written code does too.

``mapped=True`` is the Jetson variant: mapped pinned memory bound by its device pointer, no copies.

Type-checked against the project's tensorrt stubs; **not yet run on real hardware** (no GPU on
the machines used so far; ``tests/benchmarks/test_trtexec_gpu.py`` is the check to run).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from medfuse.errors import BackendError
from medfuse.runtime.cuda_memory import CudaMemory, HostBuffer, host_array, open_cuda_memory

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["BareTensorRT"]

logger = logging.getLogger(__name__)


# trt.DataType member → numpy dtype (what trt.nptype returns; the stubs leave nptype untyped)
_NUMPY_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    nbytes: int
    host: HostBuffer
    device: int | None  # None: mapped host memory, bound directly


class BareTensorRT:
    """A TensorRT plan run by hand: fill :attr:`inputs`, call :meth:`run`, read :attr:`outputs`.

    Parameters
    ----------
    plan:
        The serialized engine (``.plan``) — the same file a medfuse session runs.
    batch:
        Rows per run; replaces a dynamic batch axis (``-1``) of every input.
    mapped:
        Jetson zero-copy: mapped pinned host memory bound directly, no copies. ``False``
        (default): pinned host + device buffers with one async copy each way per tensor.
    cuda_binding:
        ``"cuda-python"`` or ``"pycuda"``; ``None`` picks as the TensorRT backend does.

    :attr:`inputs` and :attr:`outputs` are numpy views of pinned host memory owned by this
    object: valid until :meth:`close`. Use as a context manager.

    Raises
    ------
    MissingDependencyError
        TensorRT or a CUDA binding is not installed.
    BackendError
        The plan does not deserialize here, an input has a dynamic axis other than the batch,
        TensorRT refuses a shape or an address, or a dtype has no numpy equivalent.
    """

    def __init__(
        self,
        plan: str | Path,
        *,
        batch: int = 1,
        mapped: bool = False,
        cuda_binding: str | None = None,
    ) -> None:
        if batch < 1:
            raise BackendError(f"batch must be at least 1, got {batch}")
        self.plan = Path(plan)
        self.batch = batch
        self.mapped = mapped
        self._binding = cuda_binding
        self.inputs: dict[str, NDArray[Any]] = {}
        self.outputs: dict[str, NDArray[Any]] = {}
        self.dynamic_input_shapes: dict[str, tuple[int, ...]] = {}
        """Inputs whose engine shape has a dynamic axis → the shape set (for trtexec --shapes)."""
        self._mem: CudaMemory | None = None
        self._runtime: trt.Runtime | None = None
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._stream: Any = None
        self._handle = 0
        self._in: list[_Tensor] = []
        self._out: list[_Tensor] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> BareTensorRT:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Deserialize, create the context and stream, allocate and bind every I/O tensor."""
        from medfuse.devices.trt_build import load_tensorrt

        load_tensorrt()
        self._mem = open_cuda_memory(self._binding)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        import tensorrt as trt

        mem = self._mem
        assert mem is not None
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if hasattr(self._runtime, "engine_host_code_allowed"):  # TensorRT 8.6+
            self._runtime.engine_host_code_allowed = True  # version-compatible plans embed code
        engine: trt.ICudaEngine | None = self._runtime.deserialize_cuda_engine(
            self.plan.read_bytes()
        )
        if engine is None:
            raise BackendError(
                f"TensorRT could not deserialize {self.plan.name} (built by "
                "another TensorRT or for another GPU?)"
            )
        self._engine = engine
        context = engine.create_execution_context()
        self._context = context
        self._stream = mem.stream_create()
        self._handle = mem.stream_handle(self._stream)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        for name in inputs:  # all input shapes first: output shapes depend on them
            dims = engine.get_tensor_shape(name)
            shape = tuple(int(dims[j]) for j in range(len(dims)))
            concrete = tuple(self.batch if (j == 0 and d < 0) else d for j, d in enumerate(shape))
            if any(d < 0 for d in concrete):
                raise BackendError(
                    f"input {name!r} has dynamic axes beyond the batch {list(shape)}"
                )
            if concrete != shape:
                self.dynamic_input_shapes[name] = concrete
            if not context.set_input_shape(name, concrete):
                raise BackendError(
                    f"TensorRT refused shape {list(concrete)} for {name!r} "
                    "(outside the engine's optimisation profile?)"
                )
        for name in names:
            is_input = name in inputs
            dims = context.get_tensor_shape(name)
            shape = tuple(int(dims[j]) for j in range(len(dims)))
            if any(d < 0 for d in shape):
                raise BackendError(
                    f"output {name!r} has a data-dependent shape {list(shape)}; the bare loop "
                    "needs shapes known once the inputs are set"
                )
            trt_dtype = engine.get_tensor_dtype(name).name
            if trt_dtype not in _NUMPY_DTYPES:
                raise BackendError(
                    f"tensor {name!r}: TensorRT dtype {trt_dtype} has no numpy "
                    f"equivalent here (known: {', '.join(_NUMPY_DTYPES)})"
                )
            dtype = np.dtype(_NUMPY_DTYPES[trt_dtype])
            tensor = self._allocate(mem, name, shape, dtype)
            (self._in if is_input else self._out).append(tensor)  # owned: close() frees it
            ptr = tensor.device if tensor.device is not None else tensor.host.device_ptr
            assert ptr is not None
            if not context.set_tensor_address(name, ptr):
                raise BackendError(f"TensorRT refused the address of {name!r}")
            view = host_array(tensor.host.ptr, shape, dtype.name)
            (self.inputs if is_input else self.outputs)[name] = view
        logger.info(
            "bare TensorRT: %d inputs, %d outputs, batch %d, %s memory",
            len(self._in),
            len(self._out),
            self.batch,
            "mapped" if self.mapped else "pinned + device",
        )

    def _allocate(
        self, mem: CudaMemory, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> _Tensor:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = max(nbytes, 1)
        host = mem.host_alloc(size, mapped=self.mapped)
        try:
            device = None if self.mapped else mem.device_alloc(size)
        except BaseException:
            mem.free_host(host)
            raise
        return _Tensor(name=name, shape=shape, nbytes=nbytes, host=host, device=device)

    def close(self) -> None:
        """Free every buffer, the stream and the context (idempotent)."""
        mem = self._mem
        if mem is not None:
            for t in (*self._in, *self._out):
                if t.device is not None:
                    mem.free_device(t.device)
                mem.free_host(t.host)
            if self._stream is not None:
                mem.stream_destroy(self._stream)
        self._in, self._out = [], []
        self.inputs, self.outputs = {}, {}
        self._stream = None
        self._context = None
        self._engine = None
        self._runtime = None
        self._mem = None
        if mem is not None:
            mem.close()

    # -- the timed call -------------------------------------------------------------------------

    def run(self) -> None:
        """One inference: copies in, ``execute_async_v3``, copies out, stream synchronize."""
        mem, context = self._mem, self._context
        if mem is None or context is None:
            raise BackendError("BareTensorRT is not open; use it as a context manager")
        stream = self._stream
        for t in self._in:
            if t.device is not None:
                mem.copy_to_device(t.device, t.host.ptr, t.nbytes, stream)
        if not context.execute_async_v3(self._handle):
            raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        for t in self._out:
            if t.device is not None:
                mem.copy_to_host(t.host.ptr, t.device, t.nbytes, stream)
        mem.stream_sync(stream)
