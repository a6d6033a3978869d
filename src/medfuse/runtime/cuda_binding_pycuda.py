""":class:`~medfuse.runtime.cuda_memory.CudaMemory` over ``pycuda`` (the fallback binding).

Written against pycuda 2026.1 (``src/wrapper/wrap_cudadrv.cpp`` and ``src/cpp/cuda.hpp`` of
its sdist), the newest release. What that source settles:

- Context. pycuda is a driver-API binding: its objects need a context on *pycuda's own*
  per-thread context stack. ``pycuda.autoinit`` would create a new context, but TensorRT works
  through the CUDA runtime, which uses the device's *primary* context — two contexts would mean
  pointers from one are invalid in the other. So this retains device 0's primary context
  (``Device(0).retain_primary_context()``, cuDevicePrimaryCtxRetain) and pushes it, as
  ``pycuda.autoprimaryctx`` does; :meth:`PyCudaMemory.close` pops it. pycuda aborts the
  process if its stack is not empty when a thread ends, hence the ``atexit`` safety net and
  the rule: open, use and close on one thread.
- Host memory. ``pagelocked_empty(shape, dtype, mem_flags=host_alloc_flags.DEVICEMAP)``
  (cuMemHostAlloc) returns a numpy array whose ``.base`` is the ``HostAllocation``;
  ``get_device_pointer()`` (cuMemHostGetDevicePointer) gives the GPU's pointer to mapped memory.
- Copies. ``memcpy_htod_async(dest, src, stream)`` / ``memcpy_dtoh_async(dest, src, stream)``
  take the device side as an ``int`` but the host side only as a contiguous (writable, for
  dtoh) buffer object — not a raw address — so host pointers go through a numpy view
  (:func:`~medfuse.runtime.cuda_memory.host_array`).
- Streams and events have no destroy call: their destructors run cuStreamDestroy /
  cuEventDestroy when the last reference goes. ``Stream(flags)`` takes CUstream_flags as a
  plain int (pycuda has no enum for them). ``Event.time_till(end)`` is cuEventElapsedTime.
- CUDA graphs: released pycuda has no stream-capture API (``Stream.begin_capture`` appears in
  its repository, not in a release), so :meth:`PyCudaMemory.begin_capture` raises
  :class:`~medfuse.errors.BackendError` and the backend runs without graphs.

Every ``pycuda.driver.Error`` becomes a :class:`~medfuse.errors.BackendError` naming the call.
Type-checked only (pycuda is ``Any`` to mypy); **not yet run on real hardware**.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from medfuse.errors import BackendError, MissingDependencyError
from medfuse.runtime.cuda_memory import HostBuffer, host_array

__all__ = ["PyCudaMemory"]

_CU_STREAM_NON_BLOCKING = 0x1  # CUstream_flags in cuda.h; pycuda's Stream takes the raw int


def _pycuda_driver() -> Any:
    try:
        import pycuda.driver as drv
    except ImportError as exc:
        raise MissingDependencyError(
            "pycuda is needed for this CUDA binding but does not import "
            f"({exc}); use cuda-python instead: pip install 'medfuse[tensorrt]'"
        ) from exc
    return drv


class PyCudaMemory:
    """CUDA calls the TensorRT backend needs, each checked, over ``pycuda``.

    Parameters
    ----------
    device:
        CUDA device ordinal whose primary context is used (medfuse drives device 0).
    """

    binding: str = "pycuda"
    memcpy_count: int

    def __init__(self, device: int = 0) -> None:
        self._drv = _pycuda_driver()
        self.memcpy_count = 0
        self._thread = threading.get_ident()
        # Pycuda objects own the memory: keep them, keyed by pointer, until freed.
        self._host: dict[int, Any] = {}
        self._device: dict[int, Any] = {}
        self._ctx: Any = None
        with self._checked(f"primary context of device {device}"):
            self._drv.init()
            ctx = self._drv.Device(device).retain_primary_context()
            ctx.push()
        self._ctx = ctx
        atexit.register(self.close)

    @contextmanager
    def _checked(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._drv.Error as exc:
            hint = ""
            if threading.get_ident() != self._thread:
                hint = (" (pycuda keeps its context per thread: use this memory on the thread "
                        "that opened it)")
            raise BackendError(f"pycuda {what} failed: {exc}{hint}") from exc

    # -- memory ---------------------------------------------------------------------------------

    def host_alloc(self, nbytes: int, *, mapped: bool) -> HostBuffer:
        """Pinned host memory; ``mapped=True`` also maps it for the GPU (Jetson zero-copy)."""
        drv = self._drv
        with self._checked("pagelocked_empty (cuMemHostAlloc)"):
            flags = drv.host_alloc_flags.DEVICEMAP if mapped else 0
            arr = drv.pagelocked_empty((max(nbytes, 1),), np.uint8, mem_flags=flags)
            dptr = int(arr.base.get_device_pointer()) if mapped else None
        ptr = int(arr.ctypes.data)
        self._host[ptr] = arr
        return HostBuffer(ptr=ptr, nbytes=nbytes, device_ptr=dptr)

    def free_host(self, buf: HostBuffer) -> None:
        """Free memory from :meth:`host_alloc`."""
        arr = self._host.pop(buf.ptr, None)
        if arr is None:
            raise BackendError("free_host: this host buffer was not allocated by this memory "
                               "(or was freed already)")
        with self._checked("HostAllocation.free (cuMemFreeHost)"):
            arr.base.free()

    def device_alloc(self, nbytes: int) -> int:
        """Device memory; returns its pointer."""
        with self._checked(f"mem_alloc of {nbytes} bytes"):
            alloc = self._drv.mem_alloc(max(nbytes, 1))
        ptr = int(alloc)
        self._device[ptr] = alloc
        return ptr

    def free_device(self, ptr: int) -> None:
        """Free memory from :meth:`device_alloc`."""
        alloc = self._device.pop(ptr, None)
        if alloc is None:
            raise BackendError("free_device: this device pointer was not allocated by this "
                               "memory (or was freed already)")
        with self._checked("DeviceAllocation.free (cuMemFree)"):
            alloc.free()

    def copy_to_device(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        """Queue a host→device copy of ``nbytes`` on ``stream``."""
        with self._checked("memcpy_htod_async"):
            self._drv.memcpy_htod_async(dst, host_array(src, (nbytes,), "uint8"), stream)
        self.memcpy_count += 1

    def copy_to_host(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        """Queue a device→host copy of ``nbytes`` on ``stream``."""
        with self._checked("memcpy_dtoh_async"):
            self._drv.memcpy_dtoh_async(host_array(dst, (nbytes,), "uint8"), src, stream)
        self.memcpy_count += 1

    # -- streams and events ---------------------------------------------------------------------

    def stream_create(self) -> Any:
        """A non-blocking stream (TensorRT warns against the default stream)."""
        with self._checked("Stream (cuStreamCreate)"):
            return self._drv.Stream(_CU_STREAM_NON_BLOCKING)

    def stream_handle(self, stream: Any) -> int:
        """The integer handle ``execute_async_v3`` takes."""
        return int(stream.handle)

    def stream_sync(self, stream: Any) -> None:
        """Wait for everything queued on ``stream``."""
        with self._checked("Stream.synchronize"):
            stream.synchronize()

    def stream_destroy(self, stream: Any) -> None:
        """Nothing to call: pycuda destroys the stream when its last reference goes."""

    def event_create(self) -> Any:
        """A timing event."""
        with self._checked("Event (cuEventCreate)"):
            return self._drv.Event()

    def event_record(self, event: Any, stream: Any) -> None:
        """Record ``event`` on ``stream``."""
        with self._checked("Event.record"):
            event.record(stream)

    def event_elapsed_ms(self, start: Any, end: Any) -> float:
        """GPU time between two recorded events, in milliseconds."""
        with self._checked("Event.time_till (cuEventElapsedTime)"):
            return float(start.time_till(end))

    def event_destroy(self, event: Any) -> None:
        """Nothing to call: pycuda destroys the event when its last reference goes."""

    # -- CUDA graphs: not in released pycuda ----------------------------------------------------

    def _no_graphs(self) -> BackendError:
        import pycuda

        version = getattr(pycuda, "VERSION_TEXT", "?")
        return BackendError(
            f"CUDA graphs are not available through pycuda {version} (released pycuda has no "
            "stream-capture API); running without graphs — cuda-python supports them"
        )

    def begin_capture(self, stream: Any) -> None:
        """Always :class:`~medfuse.errors.BackendError`: the backend then runs without graphs."""
        raise self._no_graphs()

    def end_capture(self, stream: Any) -> Any:
        """Unreachable (see :meth:`begin_capture`)."""
        raise self._no_graphs()

    def instantiate(self, graph: Any) -> Any:
        """Unreachable (see :meth:`begin_capture`)."""
        raise self._no_graphs()

    def launch(self, graph_exec: Any, stream: Any) -> None:
        """Unreachable (see :meth:`begin_capture`)."""
        raise self._no_graphs()

    def graph_destroy(self, graph: Any, graph_exec: Any | None) -> None:
        """Unreachable (see :meth:`begin_capture`)."""
        raise self._no_graphs()

    # -- teardown -------------------------------------------------------------------------------

    def close(self) -> None:
        """Free what is still allocated and pop the primary context (as ``autoprimaryctx``).

        Idempotent; must run on the thread that opened the memory.
        """
        if self._ctx is None:
            return
        if threading.get_ident() != self._thread:
            raise BackendError("pycuda memory must be closed on the thread that opened it "
                               "(pycuda's context stack is per thread)")
        with self._checked("freeing leftover buffers"):
            for arr in self._host.values():
                arr.base.free()
            for alloc in self._device.values():
                alloc.free()
        self._host.clear()
        self._device.clear()
        with self._checked("Context.pop"):
            self._drv.Context.pop()
        self._ctx = None
        atexit.unregister(self.close)
