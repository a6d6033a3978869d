"""TensorRT backend: a deserialized plan run with ``execute_async_v3`` on reused buffers.

- Deserialize with ``trt.Runtime(logger).deserialize_cuda_engine`` (``None`` →
  :class:`~medfuse.errors.IncompatibleBundleError`); call
  :func:`medfuse.devices.preflight.preflight_engine` first — TensorRT has no preflight API.
- Name-based I/O (``num_io_tensors`` / ``get_tensor_name`` / ``get_tensor_mode`` /
  ``get_tensor_dtype``), ``set_input_shape`` and ``set_tensor_address`` per buffer set.
- Buffers per batch size, planned by :func:`medfuse.runtime.cuda_memory.plan_buffers`: on a
  Jetson mapped pinned memory bound by its device pointer (no copies); on a discrete GPU pinned
  host buffers with async copies on a non-default stream.
- CUDA graphs: after warm-up, ``execute_async_v3`` is captured once per buffer set and replayed;
  a failed capture falls back to plain enqueues (:func:`graph_action`, plain code).
- Stage timings (h2d / compute / d2h) from CUDA events when ``collect_timings=True``.

Type-checked against tensorrt-stubs; **not yet run on real hardware** (docs/tensorrt.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from medfuse.errors import BackendError, IncompatibleBundleError, MedfuseError
from medfuse.runtime.backends.base import DEFAULT_MAX_BATCH, Backend, TensorSpec
from medfuse.runtime.buffers import BufferSet
from medfuse.runtime.cuda_memory import (
    BufferPlan,
    CudaMemory,
    HostBuffer,
    IOTensor,
    host_array,
    open_cuda_memory,
    plan_buffers,
    select_cuda_binding,
)

__all__ = ["GraphState", "StageTimings", "TensorRTBackend", "graph_action"]

logger = logging.getLogger(__name__)

Action = Literal["plain", "capture", "replay"]


@dataclass
class GraphState:
    """CUDA-graph bookkeeping of one buffer set."""

    runs: int = 0
    captured: bool = False
    failed: bool = False


def graph_action(
    state: GraphState, *, enabled: bool, static_shapes: bool, warmup_runs: int = 1
) -> Action:
    """What the next run of a buffer set does: a plain enqueue, a capture, or a graph replay.

    A graph fixes shapes and addresses, so it needs static output shapes; the first
    ``warmup_runs`` enqueues run plainly (they may allocate or initialise, which must not be
    captured — trtexec does the same); after a failed capture the set stays plain.
    """
    if not enabled or not static_shapes or state.failed:
        return "plain"
    if state.captured:
        return "replay"
    return "capture" if state.runs >= warmup_runs else "plain"


@dataclass(frozen=True)
class StageTimings:
    """GPU time of the last run's stages, from CUDA events (milliseconds)."""

    h2d_ms: float
    compute_ms: float
    d2h_ms: float
    graph: bool

    def stages_ms(self) -> dict[str, float]:
        """The stages as ``{"h2d": ..., "compute": ..., "d2h": ...}`` (what benchmarks report)."""
        return {"h2d": self.h2d_ms, "compute": self.compute_ms, "d2h": self.d2h_ms}


@dataclass
class _Bound:
    """The CUDA side of one buffer set (the BufferSet's ``handle``)."""

    plan: BufferPlan
    host: dict[str, HostBuffer]
    device: dict[str, int]
    graph: GraphState = field(default_factory=GraphState)
    cuda_graph: Any = None
    graph_exec: Any = None


_TRT_TO_NUMPY = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32",
                 "INT64": "int64", "BOOL": "bool", "UINT8": "uint8", "BF16": "bfloat16"}


class TensorRTBackend(Backend):
    """Run a TensorRT plan over buffers allocated once per batch size.

    Parameters
    ----------
    plan:
        The ``.plan`` file (already checked by :func:`~medfuse.devices.preflight.preflight_engine`;
        :meth:`match_engine` does that).
    device:
        ``"cuda:0"`` (the only GPU medfuse drives; Jetson has one).
    shared_memory:
        ``True`` on Jetson (mapped zero-copy buffers), ``False`` on a discrete GPU; ``None``
        detects it.
    cuda_graphs:
        Capture and replay ``execute_async_v3`` after warm-up (default on).
    collect_timings:
        Record CUDA events around the stages; read :attr:`last_timings`.
    max_batch, check_finite:
        See :class:`~medfuse.runtime.backends.base.Backend`.
    """

    name: ClassVar[str] = "tensorrt"

    def __init__(
        self,
        plan: str | Path,
        *,
        device: str = "cuda:0",
        shared_memory: bool | None = None,
        cuda_graphs: bool = True,
        collect_timings: bool = False,
        max_batch: int = DEFAULT_MAX_BATCH,
        check_finite: bool = True,
    ) -> None:
        super().__init__(max_batch=max_batch, check_finite=check_finite)
        if device not in ("cuda", "cuda:0", "auto"):
            raise BackendError(f"device {device!r}: the TensorRT backend runs on cuda:0 only")
        self.plan = Path(plan)
        self.device = "cuda:0"
        self._shared = shared_memory
        self.cuda_graphs = cuda_graphs
        self.collect_timings = collect_timings
        self.last_timings: StageTimings | None = None
        self._io: tuple[IOTensor, ...] = ()
        self._engine: Any = None
        self._context: Any = None
        self._runtime: Any = None
        self._mem: CudaMemory | None = None
        self._stream: Any = None
        self._events: list[Any] = []
        self._profile_max = 0

    @classmethod
    def unavailable_reason(cls, device: str = "cuda:0") -> str | None:
        """Why this backend cannot run on ``device`` here, or ``None`` when it can."""
        from medfuse.devices.detect import detect_device

        if device not in ("cuda", "cuda:0", "auto"):
            return f"the TensorRT backend runs on cuda:0 only, not {device!r}"
        if not detect_device().has_gpu:
            return "no NVIDIA GPU here"
        try:
            from medfuse.devices.trt_build import load_tensorrt

            load_tensorrt()
            select_cuda_binding()
        except MedfuseError as exc:
            return str(exc)
        return None

    @classmethod
    def match_engine(cls, bundle: Any, precision: str) -> tuple[str, Path, str] | None:
        """The bundle's engine for this device: ``(precision, plan file, why)`` or ``None``.

        Picks with :func:`~medfuse.devices.preflight.select_engine` (``"auto"``: int8 → fp16 →
        fp32) and runs :func:`~medfuse.devices.preflight.preflight_engine` on the plan file
        (sha256 included) before anything is deserialized. Reasons for passing engines over
        are logged.
        """
        from medfuse.devices.detect import detect_device
        from medfuse.devices.preflight import preflight_engine, select_engine
        from medfuse.devices.trt_build import load_tensorrt

        detected = detect_device()
        trt_version = str(load_tensorrt().__version__)
        choice = select_engine(bundle, detected, precision, trt_version=trt_version)
        for reason in choice.reasons:
            logger.info("TensorRT engine passed over: %s", reason)
        record = choice.record
        if record is None:
            return None
        path = Path(bundle.path) / record.file
        preflight_engine(record, detected, trt_version, plan_path=path,
                         bundle_label=str(getattr(bundle, "label", "BUNDLE")))
        why = (f"TensorRT engine {record.key} (TensorRT {record.tensorrt_version}, compute "
               f"{record.compute_capability}) fits this device")
        return record.variant, path, why

    # -- backend hooks --------------------------------------------------------------------------

    def activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        from medfuse.devices.trt_build import load_tensorrt

        load_tensorrt()

        if self._shared is None:
            from medfuse.devices.detect import detect_device

            self._shared = detect_device().memory_shared
        self._mem = open_cuda_memory()
        try:
            return self._load_engine()
        except BaseException:
            self.deactivate_impl()  # frees what was made; pycuda pops its context
            raise

    def _load_engine(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        import tensorrt as trt

        from medfuse.devices.trt_build import make_trt_logger

        assert self._mem is not None
        self._runtime = trt.Runtime(make_trt_logger())
        # Version-compatible plans embed the lean runtime (host code); Polygraphy allows it for
        # every plan. Safe here: the plan's sha256 was checked against the manifest.
        if hasattr(self._runtime, "engine_host_code_allowed"):  # TensorRT >= 8.6
            self._runtime.engine_host_code_allowed = True
        engine: trt.ICudaEngine | None = self._runtime.deserialize_cuda_engine(
            self.plan.read_bytes())
        if engine is None:
            raise IncompatibleBundleError(
                f"TensorRT could not deserialize {self.plan.name} (built by another TensorRT or "
                "for another GPU?); rebuild it with `medfuse build BUNDLE --variant X`"
            )
        self._engine = engine
        self._context = engine.create_execution_context()
        self._stream = self._mem.stream_create()
        if self.collect_timings:
            self._events = [self._mem.event_create() for _ in range(4)]
        ins: list[TensorSpec] = []
        outs: list[TensorSpec] = []
        io: list[IOTensor] = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            dtype = _TRT_TO_NUMPY.get(engine.get_tensor_dtype(name).name, "")
            if not dtype:
                raise BackendError(f"tensor {name!r}: TensorRT dtype "
                                   f"{engine.get_tensor_dtype(name).name} is not supported")
            shape = engine.get_tensor_shape(name)
            dims = [int(shape[j]) for j in range(len(shape))]
            if is_input and dims and dims[0] < 0:
                self._profile_max = int(engine.get_tensor_profile_shape(name, 0)[2][0])
            spec_shape = tuple(None if (j == 0 and d < 0) else d for j, d in enumerate(dims))
            if any(d is not None and d < 0 for d in spec_shape):
                raise BackendError(f"tensor {name!r} has a dynamic non-batch axis {dims}; "
                                   "medfuse plans need fixed sample shapes")
            spec = TensorSpec(name, np.dtype(dtype), spec_shape)
            (ins if is_input else outs).append(spec)
            io.append(IOTensor(name, "input" if is_input else "output", dtype, spec.sample_shape))
        self._io = tuple(io)
        if self._profile_max:
            self._max_batch = min(self._max_batch, self._profile_max)
        return tuple(ins), tuple(outs)

    def allocate_impl(self, batch: int) -> BufferSet:
        assert self._mem is not None
        plan = plan_buffers(self._io, batch, bool(self._shared))
        host: dict[str, HostBuffer] = {}
        device: dict[str, int] = {}
        arrays: dict[str, dict[str, Any]] = {"input": {}, "output": {}}
        for t in plan.tensors:
            buf = self._mem.host_alloc(t.alloc_bytes, mapped=not t.device)
            host[t.name] = buf
            if t.device:
                device[t.name] = self._mem.device_alloc(t.alloc_bytes)
            arrays[t.mode][t.name] = host_array(buf.ptr, t.shape, t.dtype)
        return BufferSet(batch=batch, inputs=arrays["input"], outputs=arrays["output"],
                         handle=_Bound(plan=plan, host=host, device=device))

    def _bind(self, bound: _Bound) -> bool:
        """Set shapes and addresses for this set; return whether output shapes are static."""
        ctx = self._context
        for t in bound.plan.tensors:
            if t.mode == "input" and not ctx.set_input_shape(t.name, t.shape):
                raise BackendError(f"TensorRT refused shape {list(t.shape)} for {t.name!r} "
                                   "(outside the engine's optimisation profile?)")
        for t in bound.plan.tensors:
            ptr = bound.device[t.name] if t.device else bound.host[t.name].device_ptr
            assert ptr is not None
            if not ctx.set_tensor_address(t.name, ptr):
                raise BackendError(f"TensorRT refused the address of {t.name!r}")
        static = True
        for t in bound.plan.tensors:
            if t.mode == "output":
                shape = ctx.get_tensor_shape(t.name)
                dims = tuple(int(shape[j]) for j in range(len(shape)))
                if dims != t.shape:
                    static = False
        return static

    def execute_impl(self, buffers: BufferSet) -> None:
        assert self._mem is not None
        mem, stream, bound = self._mem, self._stream, buffers.handle
        assert isinstance(bound, _Bound)
        static = self._bind(bound)
        ev = self._events
        if ev:
            mem.event_record(ev[0], stream)
        for t in bound.plan.tensors:
            if t.mode == "input" and t.device:
                mem.copy_to_device(bound.device[t.name], bound.host[t.name].ptr, t.nbytes, stream)
        if ev:
            mem.event_record(ev[1], stream)
        action = graph_action(bound.graph, enabled=self.cuda_graphs, static_shapes=static)
        if action == "replay":
            mem.launch(bound.graph_exec, stream)
        elif action == "capture":
            self._capture(bound)
        else:
            self._enqueue()
        bound.graph.runs += 1
        if ev:
            mem.event_record(ev[2], stream)
        for t in bound.plan.tensors:
            if t.mode == "output" and t.device:
                mem.copy_to_host(bound.host[t.name].ptr, bound.device[t.name], t.nbytes, stream)
        if ev:
            mem.event_record(ev[3], stream)
        mem.stream_sync(stream)
        if ev:
            self.last_timings = StageTimings(
                h2d_ms=mem.event_elapsed_ms(ev[0], ev[1]),
                compute_ms=mem.event_elapsed_ms(ev[1], ev[2]),
                d2h_ms=mem.event_elapsed_ms(ev[2], ev[3]),
                graph=action == "replay",
            )

    def _enqueue(self) -> None:
        assert self._mem is not None
        if not self._context.execute_async_v3(self._mem.stream_handle(self._stream)):
            raise BackendError("TensorRT execute_async_v3 failed (see the TensorRT log)")

    def _capture(self, bound: _Bound) -> None:
        """Capture one enqueue into a graph and launch it; on failure run plainly from now on."""
        assert self._mem is not None
        mem = self._mem
        try:
            mem.begin_capture(self._stream)
            ok = self._context.execute_async_v3(mem.stream_handle(self._stream))
            graph = mem.end_capture(self._stream)
            if not ok:
                mem.graph_destroy(graph, None)
                raise BackendError("enqueue refused under capture")
            bound.cuda_graph = graph
            bound.graph_exec = mem.instantiate(graph)
            bound.graph.captured = True
        except BackendError as exc:
            logger.info("CUDA graph capture failed for batch %d (%s); running without graphs",
                        bound.plan.batch, exc)
            bound.graph.failed = True
            self._enqueue()
            return
        mem.launch(bound.graph_exec, self._stream)

    def release_impl(self, buffers: BufferSet) -> None:
        if self._mem is None or not isinstance(buffers.handle, _Bound):
            return
        bound = buffers.handle
        if bound.cuda_graph is not None:
            self._mem.graph_destroy(bound.cuda_graph, bound.graph_exec)
        for ptr in bound.device.values():
            self._mem.free_device(ptr)
        for buf in bound.host.values():
            self._mem.free_host(buf)

    def deactivate_impl(self) -> None:
        mem = self._mem
        if mem is not None:
            for event in self._events:
                mem.event_destroy(event)
            if self._stream is not None:
                mem.stream_destroy(self._stream)
        self._events = []
        self._stream = None
        self._context = None
        self._engine = None
        self._runtime = None
        self._mem = None
        if mem is not None:
            mem.close()  # last: pycuda pops the primary context it pushed

    @property
    def memcpy_count(self) -> int:
        """Async copies issued so far (0 on the mapped Jetson path)."""
        return self._mem.memcpy_count if self._mem is not None else 0
