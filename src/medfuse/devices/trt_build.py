"""The thin TensorRT adapter: apply a :class:`~medfuse.devices.plan.BuildPlan` with real calls.

Every decision was made in plain code (:func:`medfuse.devices.plan.plan_build`); this module
only maps names to TensorRT enums and calls the builder: ``create_network`` →
``OnnxParser.parse_from_file`` → ``IBuilderConfig`` (memory pool, optimisation level, flags,
DLA, profiles, timing cache, progress monitor) → ``build_serialized_network``.

``tensorrt`` is imported inside the functions (it is optional and heavy). Type-checked
against ``tensorrt-stubs``; **not yet run on real hardware** (see docs/tensorrt.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from medfuse._deps import require
from medfuse.devices.plan import BuildPlan
from medfuse.errors import EngineBuildError, MissingDependencyError

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["BuildResult", "ProgressCallback", "build_serialized_engine", "load_tensorrt"]

logger = logging.getLogger(__name__)

# (phase name, step done, steps in phase); returning nothing — cancellation is via Ctrl-C.
ProgressCallback = Callable[[str, int, int], None]

_MAX_PARSER_ERRORS = 20


def load_tensorrt() -> ModuleType:
    """Import the full ``tensorrt`` module (with the builder) or raise MissingDependencyError.

    A namespace package without ``Builder`` (type stubs only, or the lean/dispatch runtimes)
    counts as missing: the message says how to get the real library.
    """
    module = require("tensorrt", purpose="building and running TensorRT engines")
    if not hasattr(module, "Builder") or not hasattr(module, "Runtime"):
        raise MissingDependencyError(
            "the importable 'tensorrt' has no Builder/Runtime (only type stubs or a lean runtime "
            "are installed); install the full library: on Jetson it comes with JetPack "
            "(sudo apt install nvidia-jetpack), elsewhere pip install 'medfuse[tensorrt]'"
        )
    return module


@dataclass(frozen=True)
class BuildResult:
    """A built plan, the timing cache after the build, and what the build took."""

    plan: bytes
    timing_cache: bytes
    seconds: float
    timing_cache_reused: bool
    warnings: tuple[str, ...]


def _logger_class() -> type[trt.ILogger]:
    import tensorrt as trt

    class _TrtLog(trt.ILogger):
        """Routes TensorRT's log to ``logging`` and keeps errors for the exception message."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.errors.append(msg)
                logger.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.WARNING:
                self.warnings.append(msg)
                logger.warning("TensorRT: %s", msg)
            elif severity == trt.ILogger.INFO:
                logger.info("TensorRT: %s", msg)
            else:
                logger.debug("TensorRT: %s", msg)

    return _TrtLog


def make_trt_logger() -> Any:
    """A TensorRT ``ILogger`` that forwards to ``logging`` (attributes ``errors``, ``warnings``)."""
    return _logger_class()()


def _monitor(callback: ProgressCallback) -> trt.IProgressMonitor:
    import tensorrt as trt

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
            self._steps[phase_name] = num_steps
            callback(phase_name, 0, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            callback(phase_name, step + 1, self._steps.get(phase_name, 0))
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            n = self._steps.pop(phase_name, 0)
            callback(phase_name, n, n)

    return _Monitor()


def _parse(parser: trt.OnnxParser, onnx_path: Path) -> None:
    if parser.parse_from_file(str(onnx_path)):
        return
    errors = []
    for i in range(min(parser.num_errors, _MAX_PARSER_ERRORS)):
        err = parser.get_error(i)
        errors.append(f"  - node {err.node()} ({err.node_name()!s} {err.node_operator()!s}): "
                      f"{err.desc()}")
    more = parser.num_errors - len(errors)
    tail = f"\n  … and {more} more" if more > 0 else ""
    raise EngineBuildError(
        f"TensorRT's ONNX parser rejected {onnx_path.name} with {parser.num_errors} error(s):\n"
        + "\n".join(errors) + tail
        + "\nCheck the ops with `polygraphy inspect capability` or re-export the model."
    )


def build_serialized_engine(
    plan: BuildPlan,
    onnx_path: Path,
    *,
    timing_cache: bytes | None = None,
    progress: ProgressCallback | None = None,
) -> BuildResult:
    """Build a TensorRT plan from ``onnx_path`` exactly as ``plan`` says.

    Parameters
    ----------
    plan:
        From :func:`~medfuse.devices.plan.plan_build`.
    onnx_path:
        The variant's ONNX file (sha256 already checked by the caller).
    timing_cache:
        Bytes of a previous timing cache for this device key, or ``None`` for a fresh one.
    progress:
        Called with ``(phase, done, total)`` as TensorRT reports progress (TensorRT 10+).

    Raises
    ------
    MissingDependencyError
        TensorRT is not installed.
    EngineBuildError
        The parser rejected the model, or the builder returned no plan (its errors listed).
    """
    load_tensorrt()
    import tensorrt as trt

    log = make_trt_logger()
    started = time.perf_counter()
    builder = trt.Builder(log)
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, log)
    for name in plan.parser_flags:
        parser.set_flag(getattr(trt.OnnxParserFlag, name))
    _parse(parser, onnx_path)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    if plan.optimization_level is not None:
        config.builder_optimization_level = plan.optimization_level
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    if plan.use_progress_monitor and progress is not None:
        config.progress_monitor = _monitor(progress)

    dynamic: set[str] = set()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tensor.shape
        if any(shape[j] < 0 for j in range(len(shape))):
            dynamic.add(tensor.name)
    if dynamic:
        for prof in plan.profiles:
            profile = builder.create_optimization_profile()
            for shapes in prof.inputs:
                if shapes.name in dynamic:
                    profile.set_shape(shapes.name, trt.Dims(list(shapes.min)),
                                      trt.Dims(list(shapes.opt)), trt.Dims(list(shapes.max)))
            if config.add_optimization_profile(profile) < 0:
                raise EngineBuildError(
                    f"TensorRT rejected optimisation profile {prof.to_dict()}; check that the "
                    "input names and shapes match the ONNX model"
                )

    cache = config.create_timing_cache(timing_cache or b"")
    reused = bool(timing_cache) and config.set_timing_cache(cache, ignore_mismatch=False)
    if timing_cache and not reused:
        logger.warning("stored timing cache does not fit this TensorRT/GPU; starting a new one")
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=True)
    elif not timing_cache:
        config.set_timing_cache(cache, ignore_mismatch=True)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        detail = "\n".join(f"  - {e}" for e in log.errors[-10:]) or "  (no error was logged)"
        raise EngineBuildError(
            f"TensorRT could not build an engine from {onnx_path.name}:\n{detail}\n"
            "Try a larger --workspace, a lower --opt-level, or fewer/smaller --batch sizes."
        )
    cache_bytes = bytes(config.get_timing_cache().serialize())
    seconds = time.perf_counter() - started
    logger.info("built %s plan in %.1f s (%d bytes)", plan.variant, seconds, serialized.nbytes)
    return BuildResult(
        plan=bytes(memoryview(serialized)),
        timing_cache=cache_bytes,
        seconds=seconds,
        timing_cache_reused=reused,
        warnings=tuple(log.warnings),
    )
