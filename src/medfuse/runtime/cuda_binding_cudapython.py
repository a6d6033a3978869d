""":class:`~medfuse.runtime.cuda_memory.CudaMemory` over NVIDIA's ``cuda-python``.

``cuda.bindings.runtime`` (``cuda.cudart`` before cuda-python 12.6) — the CUDA runtime API,
the same one TensorRT uses, so every call lands in device 0's primary context without any
context handling here. Imported when :class:`CudaPythonMemory` is created, never at module
import. Type-checked only; **not yet run on real hardware** (docs/tensorrt.md).
"""

from __future__ import annotations

from typing import Any

from medfuse.errors import BackendError, MissingDependencyError
from medfuse.runtime.cuda_memory import HostBuffer

__all__ = ["CudaPythonMemory"]


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


class CudaPythonMemory:
    """CUDA runtime calls the TensorRT backend needs, each checked, over ``cuda-python``.

    ``memcpy_count`` counts async copies issued (the mapped Jetson path issues none).
    """

    binding: str = "cuda-python"
    memcpy_count: int

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
        """Free memory from :meth:`host_alloc`."""
        self._check(self._rt.cudaFreeHost(buf.ptr), "cudaFreeHost")

    def device_alloc(self, nbytes: int) -> int:
        """Device memory; returns its pointer."""
        return int(self._check(self._rt.cudaMalloc(nbytes), "cudaMalloc"))

    def free_device(self, ptr: int) -> None:
        """Free memory from :meth:`device_alloc`."""
        self._check(self._rt.cudaFree(ptr), "cudaFree")

    def copy_to_device(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        """Queue a host→device copy of ``nbytes`` on ``stream``."""
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self._rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync")
        self.memcpy_count += 1

    def copy_to_host(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        """Queue a device→host copy of ``nbytes`` on ``stream``."""
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
        """Wait for everything queued on ``stream``."""
        self._check(self._rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def stream_destroy(self, stream: Any) -> None:
        """Destroy a stream from :meth:`stream_create`."""
        self._check(self._rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def event_create(self) -> Any:
        """A timing event."""
        return self._check(self._rt.cudaEventCreate(), "cudaEventCreate")

    def event_record(self, event: Any, stream: Any) -> None:
        """Record ``event`` on ``stream``."""
        self._check(self._rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        """GPU time between two recorded events, in milliseconds."""
        return float(self._check(self._rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def event_destroy(self, event: Any) -> None:
        """Destroy an event from :meth:`event_create`."""
        self._check(self._rt.cudaEventDestroy(event), "cudaEventDestroy")

    # -- CUDA graphs ----------------------------------------------------------------------------

    def begin_capture(self, stream: Any) -> None:
        """Start capturing ``stream`` into a CUDA graph (BackendError where unsupported)."""
        mode = self._rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self._check(self._rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: Any) -> Any:
        """Stop capturing; returns the graph."""
        return self._check(self._rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")

    def instantiate(self, graph: Any) -> Any:
        """An executable graph from a captured one."""
        return self._check(self._rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")

    def launch(self, graph_exec: Any, stream: Any) -> None:
        """Replay an executable graph on ``stream``."""
        self._check(self._rt.cudaGraphLaunch(graph_exec, stream), "cudaGraphLaunch")

    def graph_destroy(self, graph: Any, graph_exec: Any | None) -> None:
        """Destroy a captured graph and its executable form."""
        if graph_exec is not None:
            self._check(self._rt.cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        self._check(self._rt.cudaGraphDestroy(graph), "cudaGraphDestroy")

    def close(self) -> None:
        """Nothing to give back: the CUDA runtime owns its primary context."""
