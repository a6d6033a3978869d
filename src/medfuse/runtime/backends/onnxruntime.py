"""ONNX Runtime backend: CPU or CUDA execution provider, IOBinding over reused host buffers.

Each batch size gets its arrays allocated once and bound with
``IOBinding.bind_input(name, "cpu", 0, dtype, shape, ptr)`` /
``bind_output(..., ptr)``; a call is then ``run_with_iobinding`` on memory that already holds
the inputs, writing outputs straight into the preallocated output arrays. With the CUDA
execution provider ONNX Runtime copies the bound host inputs to the device and the outputs
back inside the same call.

See :mod:`medfuse.runtime.backends.base` for buffer ownership: returned outputs are the bound
arrays, valid until the next call with the same batch size.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from medfuse.errors import BackendError, MissingDependencyError, UsageError
from medfuse.runtime.backends.base import DEFAULT_MAX_BATCH, Backend, TensorSpec
from medfuse.runtime.buffers import BufferSet, aligned_empty
from medfuse.runtime.threads import plan_threads

__all__ = ["GRAPH_OPTIMIZATION_LEVELS", "OnnxRuntimeBackend", "ort_providers"]

logger = logging.getLogger(__name__)

GRAPH_OPTIMIZATION_LEVELS = ("all", "extended", "basic", "disabled")

_ORT_DTYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            "onnxruntime is needed for the ONNX Runtime backend but is not installed; install "
            "it with: pip install onnxruntime (CPU) or pip install onnxruntime-gpu (CUDA)"
        ) from exc
    return onnxruntime


def ort_providers() -> tuple[str, ...]:
    """Execution providers this onnxruntime build offers (empty when onnxruntime is missing)."""
    try:
        return tuple(_ort().get_available_providers())
    except MissingDependencyError:
        return ()


class OnnxRuntimeBackend(Backend):
    """Run an ONNX model with ONNX Runtime over IOBinding-bound, reused buffers.

    Parameters
    ----------
    model:
        Path of the ``.onnx`` file.
    device:
        ``"cpu"`` or ``"cuda:N"``.
    threads:
        Intra-op threads (``None``: every available core, see
        :func:`medfuse.runtime.threads.plan_threads`). Always set explicitly, so ONNX Runtime
        does not pin its threads to cores. Bounded by :func:`~medfuse.runtime.threads.check_threads`.
    allow_spinning:
        Whether idle intra-op threads spin-wait (``False`` while a read pipeline shares the
        cores: ``session.intra_op.allow_spinning = "0"``).
    graph_optimization:
        ``"all"`` (default), ``"extended"``, ``"basic"`` or ``"disabled"``.
    sample_shapes:
        Per-input shapes without the batch axis (from the bundle's spec), used where the graph
        leaves a non-batch dimension symbolic; medfuse binds fixed shapes.
    max_batch, check_finite:
        See :class:`~medfuse.runtime.backends.base.Backend`.
    """

    name: ClassVar[str] = "onnxruntime"

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "cpu",
        threads: int | None = None,
        allow_spinning: bool = True,
        graph_optimization: str = "all",
        sample_shapes: Mapping[str, Sequence[int]] | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        check_finite: bool = True,
    ) -> None:
        super().__init__(max_batch=max_batch, check_finite=check_finite)
        if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise UsageError(
                f"graph_optimization {graph_optimization!r} is not one of "
                f"{', '.join(GRAPH_OPTIMIZATION_LEVELS)}"
            )
        plan = plan_threads(intra_op=threads, pipeline=False, allow_spinning=allow_spinning)
        self.model = Path(model)
        self.device = device
        self.threads = plan.intra_op
        self.inter_op_threads = plan.inter_op
        self.allow_spinning = plan.allow_spinning
        self.graph_optimization = graph_optimization
        self._sample_shapes = {
            k: tuple(int(d) for d in v) for k, v in (sample_shapes or {}).items()
        }
        self._session: Any = None
        # batch → (its slot-0 buffer set, the IOBinding infer() uses, input name → bound address)
        self._infer_bindings: dict[int, tuple[BufferSet, Any, dict[str, int]]] = {}

    @classmethod
    def unavailable_reason(cls, device: str = "cpu") -> str | None:
        """Why this backend cannot run on ``device`` here, or ``None`` when it can."""
        providers = ort_providers()
        if not providers:
            return "onnxruntime is not installed (pip install onnxruntime)"
        if device.startswith("cuda") and "CUDAExecutionProvider" not in providers:
            return (
                "onnxruntime has no CUDAExecutionProvider here (providers: "
                f"{', '.join(providers)}); install onnxruntime-gpu instead of onnxruntime"
            )
        return None

    @property
    def providers(self) -> tuple[str, ...]:
        if self._session is None:
            return ()
        return tuple(self._session.get_providers())

    def _requested_providers(self) -> list[Any]:
        if self.device.startswith("cuda"):
            index = int(self.device.partition(":")[2] or 0)
            return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        ort = _ort()
        reason = self.unavailable_reason(self.device)
        if reason is not None:
            raise BackendError(f"ONNX Runtime cannot run on {self.device}: {reason}")
        opts = ort.SessionOptions()
        levels = {
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        }
        opts.graph_optimization_level = levels[self.graph_optimization]
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = self.inter_op_threads
        opts.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.allow_spinning else "0"
        )
        opts.log_severity_level = 3  # errors only: ORT warnings go to stderr, not our logs
        try:
            session = ort.InferenceSession(
                str(self.model), sess_options=opts, providers=self._requested_providers()
            )
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/RuntimeException types
            raise BackendError(
                f"ONNX Runtime could not load the model {self.model.name}: {exc}"
            ) from exc
        active = session.get_providers()
        if self.device.startswith("cuda") and "CUDAExecutionProvider" not in active:
            raise BackendError(
                "ONNX Runtime could not start the CUDAExecutionProvider (CUDA/cuDNN libraries "
                "missing or incompatible); use device='cpu' or install the matching CUDA runtime"
            )
        self._session = session
        inputs = tuple(self._fix_input(_spec(x)) for x in session.get_inputs())
        outputs = tuple(_spec(x) for x in session.get_outputs())
        logger.info(
            "onnxruntime %s: %s on %s, providers %s, threads %d (spinning %s), graph "
            "optimisation %s",
            ort.__version__,
            self.model.name,
            self.device,
            ",".join(active),
            self.threads,
            "on" if self.allow_spinning else "off",
            self.graph_optimization,
        )
        return inputs, outputs

    def _fix_input(self, spec: TensorSpec) -> TensorSpec:
        """Fill symbolic non-batch dimensions from ``sample_shapes``."""
        if None not in spec.shape[1:]:
            return spec
        given = self._sample_shapes.get(spec.name)
        if given is None or len(given) != len(spec.shape) - 1:
            dims = ["batch" if d is None else d for d in spec.shape]
            raise BackendError(
                f"input {spec.name!r} has symbolic dimensions {dims} beyond the batch axis; "
                "medfuse binds fixed shapes: export with only the batch axis dynamic, or pass "
                "sample_shapes={name: (C, H, W)}"
            )
        for have, want in zip(spec.shape[1:], given, strict=True):
            if have is not None and have != want:
                raise BackendError(
                    f"input {spec.name!r}: sample shape {list(given)} does not fit the graph's "
                    f"{list(spec.shape[1:])}"
                )
        return TensorSpec(spec.name, spec.dtype, (spec.shape[0], *given))

    def allocate_impl(self, batch: int) -> BufferSet:
        inputs = {}
        for spec in self.input_specs:
            arr = aligned_empty(spec.batch_shape(batch), spec.dtype)
            arr.fill(0)
            inputs[spec.name] = arr
        out_shapes = self._output_shapes(batch, inputs)
        outputs = {
            spec.name: aligned_empty(out_shapes[spec.name], spec.dtype)
            for spec in self.output_specs
        }
        binding = self._session.io_binding()
        for name, arr in inputs.items():
            binding.bind_input(name, "cpu", 0, arr.dtype.type, arr.shape, arr.ctypes.data)
        for name, arr in outputs.items():
            binding.bind_output(name, "cpu", 0, arr.dtype.type, arr.shape, arr.ctypes.data)
        return BufferSet(batch=batch, inputs=inputs, outputs=outputs, handle=binding)

    def _output_shapes(
        self, batch: int, inputs: dict[str, np.ndarray[Any, Any]]
    ) -> dict[str, tuple[int, ...]]:
        """Output shapes for ``batch``: from the graph, or from one probe run when symbolic."""
        shapes: dict[str, tuple[int, ...]] = {}
        for spec in self.output_specs:
            if spec.shape[1:] and None in spec.shape[1:]:
                break
            shapes[spec.name] = (spec.shape[0] or batch, *spec.sample_shape)
        else:
            return shapes
        # Some non-batch output dimension is symbolic: one run on zeros tells the real shape.
        results = self._session.run(None, inputs)
        return {
            spec.name: tuple(int(d) for d in r.shape)
            for spec, r in zip(self.output_specs, results, strict=True)
        }

    def infer_impl(self, buffers: BufferSet, feeds: Mapping[str, np.ndarray[Any, Any]]) -> None:
        """Bind the caller's (validated) arrays in place and run: no input copy.

        One extra IOBinding per batch size, its outputs bound to ``buffers.outputs``; an input is
        rebound only when its array's address changed since the last call (same name, batch,
        dtype and shape: the layout was validated). A non-contiguous feed is copied into the
        bound input buffer first.
        """
        entry = self._infer_bindings.get(buffers.batch)
        if entry is None or entry[0] is not buffers:
            binding = self._session.io_binding()
            for name, arr in buffers.outputs.items():
                binding.bind_output(name, "cpu", 0, arr.dtype.type, arr.shape, arr.ctypes.data)
            entry = (buffers, binding, {})
            self._infer_bindings[buffers.batch] = entry
        _, binding, bound = entry
        for name, dst in buffers.inputs.items():
            src = feeds[name]
            if not src.flags.c_contiguous:
                np.copyto(dst, src)
                src = dst
            ptr = src.ctypes.data
            if bound.get(name) != ptr:
                binding.bind_input(name, "cpu", 0, src.dtype.type, src.shape, ptr)
                bound[name] = ptr
        try:
            self._session.run_with_iobinding(binding)
        except Exception as exc:  # ORT's runtime errors are not a public type hierarchy
            raise BackendError(
                f"ONNX Runtime failed to run {self.model.name} at batch {buffers.batch}: {exc}"
            ) from exc

    def execute_impl(self, buffers: BufferSet) -> None:
        try:
            self._session.run_with_iobinding(buffers.handle)
        except Exception as exc:  # ORT's runtime errors are not a public type hierarchy
            raise BackendError(
                f"ONNX Runtime failed to run {self.model.name} at batch {buffers.batch}: {exc}"
            ) from exc

    def release_impl(self, buffers: BufferSet) -> None:
        binding = buffers.handle
        if binding is not None:
            binding.clear_binding_inputs()
            binding.clear_binding_outputs()
        buffers.handle = None

    def deactivate_impl(self) -> None:
        self._infer_bindings.clear()
        self._session = None


def _spec(node: Any) -> TensorSpec:
    """A TensorSpec from an onnxruntime NodeArg; the first axis is the batch axis."""
    dtype = _ORT_DTYPES.get(node.type)
    if dtype is None:
        raise BackendError(
            f"tensor {node.name!r} has type {node.type}, which medfuse does not bind; "
            f"supported: {', '.join(sorted(_ORT_DTYPES))}"
        )
    dims: list[int | None] = [d if isinstance(d, int) and d > 0 else None for d in node.shape]
    return TensorSpec(name=node.name, dtype=dtype, shape=tuple(dims))


def describe_providers(providers: Sequence[str]) -> str:
    """A short human description of an execution-provider list."""
    return ", ".join(p.removesuffix("ExecutionProvider") for p in providers) or "none"
