"""How to build a TensorRT engine here: the decision, in plain code, before any TensorRT call.

TensorRT 11 removed weak typing (no ``BuilderFlag.FP16`` / ``INT8``); TensorRT 10 has strongly
typed networks and deprecated weak typing; TensorRT 8.5/8.6 (JetPack 5.1 / 6.0) only have weak
typing. Which API a build uses is decided from *features* — what the installed ``tensorrt``
module exposes (:func:`features_from_module`) — never from its version string.
:func:`plan_build` turns the features, a :class:`BuildRequest` and the device's catalog entry
into a :class:`BuildPlan` (network flags, builder flags, profiles, memory limit, DLA settings,
timing-cache key) that :mod:`medfuse.devices.trt_build` then applies verbatim.

Only stdlib here: this module is part of the runtime tier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from medfuse.bundle.spec import ModelSpec
from medfuse.devices.catalog import BuildDefaults, CatalogEntry
from medfuse.devices.keys import OptimizationProfile, compute_profiles, device_key
from medfuse.errors import EngineBuildError, UsageError

__all__ = [
    "GENERIC_DEFAULTS",
    "BuildPlan",
    "BuildRequest",
    "TrtFeatures",
    "features_from_module",
    "parse_batch_sizes",
    "plan_build",
]

logger = logging.getLogger(__name__)

GENERIC_DEFAULTS = BuildDefaults(workspace_mib=4096, builder_optimization_level=3,
                                 batch_sizes=(1, 4, 8))
_DLA_PRECISIONS = ("fp16", "int8")


@dataclass(frozen=True)
class TrtFeatures:
    """What the installed TensorRT Python API offers (each field: one ``hasattr`` probe).

    ``version`` is informational (recorded in engine keys and messages); no decision reads it.
    """

    version: str
    strongly_typed: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED (10.0+; no-op on 11)
    explicit_batch_flag: bool  # NetworkDefinitionCreationFlag.EXPLICIT_BATCH (<= 10.x)
    weak_typing: bool  # BuilderFlag.FP16 / INT8 (<= 10.x; removed in 11)
    memory_pools: bool  # IBuilderConfig.set_memory_pool_limit (8.4+)
    serialized_build: bool  # Builder.build_serialized_network (8.0+)
    named_tensors: bool  # ICudaEngine.num_io_tensors + execute_async_v3 (8.5+)
    optimization_level: bool  # IBuilderConfig.builder_optimization_level (8.6+)
    version_compatible: bool  # BuilderFlag.VERSION_COMPATIBLE (8.6+)
    exclude_lean_runtime: bool  # BuilderFlag.EXCLUDE_LEAN_RUNTIME (8.6+)
    progress_monitor: bool  # IProgressMonitor (10.0+)
    timing_cache: bool  # IBuilderConfig.create_timing_cache
    dla: bool  # DeviceType.DLA and BuilderFlag.GPU_FALLBACK
    native_instancenorm: bool  # OnnxParserFlag.NATIVE_INSTANCENORM

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _has(obj: Any, *path: str) -> bool:
    for name in path:
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


def features_from_module(trt: Any) -> TrtFeatures:
    """Probe a ``tensorrt`` module (or any object shaped like one) for build/runtime features.

    Only attribute presence is inspected, so the probe works on the real module and on a small
    namespace mimicking one release's enums.
    """
    return TrtFeatures(
        version=str(getattr(trt, "__version__", "unknown")),
        strongly_typed=_has(trt, "NetworkDefinitionCreationFlag", "STRONGLY_TYPED"),
        explicit_batch_flag=_has(trt, "NetworkDefinitionCreationFlag", "EXPLICIT_BATCH"),
        weak_typing=_has(trt, "BuilderFlag", "FP16") and _has(trt, "BuilderFlag", "INT8"),
        memory_pools=_has(trt, "IBuilderConfig", "set_memory_pool_limit")
        and _has(trt, "MemoryPoolType", "WORKSPACE"),
        serialized_build=_has(trt, "Builder", "build_serialized_network"),
        named_tensors=_has(trt, "ICudaEngine", "num_io_tensors")
        and _has(trt, "IExecutionContext", "execute_async_v3"),
        optimization_level=_has(trt, "IBuilderConfig", "builder_optimization_level"),
        version_compatible=_has(trt, "BuilderFlag", "VERSION_COMPATIBLE"),
        exclude_lean_runtime=_has(trt, "BuilderFlag", "EXCLUDE_LEAN_RUNTIME"),
        progress_monitor=_has(trt, "IProgressMonitor"),
        timing_cache=_has(trt, "IBuilderConfig", "create_timing_cache"),
        dla=_has(trt, "DeviceType", "DLA") and _has(trt, "BuilderFlag", "GPU_FALLBACK"),
        native_instancenorm=_has(trt, "OnnxParserFlag", "NATIVE_INSTANCENORM"),
    )


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for (``medfuse build`` options); ``None`` means the device default."""

    variant: str
    batch_sizes: tuple[int, ...] | None = None
    dla_core: int | None = None
    workspace_mib: int | None = None
    optimization_level: int | None = None
    version_compatible: bool = False
    exclude_lean_runtime: bool = False


@dataclass(frozen=True)
class BuildPlan:
    """Every setting of one engine build, as names the adapter maps to TensorRT enums.

    ``network_flags`` / ``builder_flags`` / ``parser_flags`` are member names of
    ``NetworkDefinitionCreationFlag`` / ``BuilderFlag`` / ``OnnxParserFlag``.
    """

    variant: str
    strongly_typed: bool
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    parser_flags: tuple[str, ...]
    workspace_bytes: int
    optimization_level: int | None
    profiles: tuple[OptimizationProfile, ...]
    batch_sizes: tuple[int, ...]
    dla_core: int | None
    version_compatible: bool
    timing_cache_key: str
    use_progress_monitor: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def timing_cache_file(self) -> str:
        """Where the timing cache lives in the bundle."""
        return f"timing-caches/{self.timing_cache_key}.cache"


def _check_minimum(features: TrtFeatures) -> None:
    missing = [
        what for what, ok in (
            ("Builder.build_serialized_network", features.serialized_build),
            ("IBuilderConfig.set_memory_pool_limit", features.memory_pools),
            ("the named-tensor API (num_io_tensors / execute_async_v3)", features.named_tensors),
        ) if not ok
    ]
    if missing:
        raise EngineBuildError(
            f"TensorRT {features.version} lacks {', '.join(missing)}; medfuse needs TensorRT 8.5 "
            "or newer (JetPack 5.1+ on Jetson, or pip install 'medfuse[tensorrt]' elsewhere)"
        )


def _precision_flags(variant: str) -> tuple[str, ...]:
    base = variant.split("-", 1)[0]
    if base == "fp16":
        return ("FP16",)
    if base == "int8":
        # Same as trtexec --int8 --fp16: Q/DQ layers run INT8, the rest may use FP16.
        return ("INT8", "FP16")
    return ()


def plan_build(
    features: TrtFeatures,
    request: BuildRequest,
    device: CatalogEntry | None,
    spec: ModelSpec,
    *,
    gpu_name: str,
    compute_capability: str,
) -> BuildPlan:
    """Decide every setting of an engine build.

    Parameters
    ----------
    features:
        From :func:`features_from_module` on the installed ``tensorrt``.
    request:
        The user's request; ``None`` fields take the device's catalog defaults.
    device:
        The catalog entry of this device (``None`` for a GPU the catalog does not know:
        generic defaults, no DLA).
    spec:
        The bundle's model spec (input names and shapes for the profiles).
    gpu_name, compute_capability:
        This GPU as detected; they name the timing cache.

    Raises
    ------
    UsageError
        A request that cannot work on this device (DLA where there is none, FP32 on DLA,
        version-compatible together with DLA, an optimisation level outside 0–5).
    EngineBuildError
        The installed TensorRT is too old, or lacks a feature the request needs.
    """
    _check_minimum(features)
    notes: list[str] = []
    defaults = device.build_defaults if device is not None else GENERIC_DEFAULTS
    base_variant = request.variant.split("-", 1)[0]
    name = device.name if device is not None else gpu_name

    dla = request.dla_core
    if dla is not None:
        cores = device.dla_cores if device is not None else 0
        if cores == 0:
            raise UsageError(f"--dla {dla}: {name} has no DLA; drop --dla to build for the GPU")
        if not 0 <= dla < cores:
            raise UsageError(f"--dla {dla}: {name} has DLA cores 0..{cores - 1}")
        if base_variant not in _DLA_PRECISIONS:
            raise UsageError(
                f"--dla with variant {request.variant!r}: DLA runs fp16 or int8 only; "
                "use --variant fp16 or --variant int8"
            )
        if request.version_compatible:
            raise UsageError("--version-compatible cannot be combined with --dla")
        if not features.dla:
            raise EngineBuildError(
                f"TensorRT {features.version} exposes no DLA support (DeviceType.DLA / "
                "BuilderFlag.GPU_FALLBACK); build without --dla"
            )

    builder_flags: list[str] = []
    network_flags: list[str] = []
    if dla is not None and features.weak_typing:
        # TensorRT 10.x DLA builds take precision from builder flags (strongly typed DLA builds
        # arrive with 11.4.1); the ONNX's Q/DQ scales still drive INT8.
        strongly_typed = False
        builder_flags += _precision_flags(request.variant)
        notes.append("DLA on a TensorRT with weak typing: weakly typed network with "
                     f"{'/'.join(_precision_flags(request.variant))} builder flags")
    elif features.strongly_typed:
        strongly_typed = True
        network_flags.append("STRONGLY_TYPED")
    elif features.weak_typing:
        # TensorRT 8.x: no strong typing; precision comes from builder flags.
        strongly_typed = False
        builder_flags += _precision_flags(request.variant)
        if builder_flags:
            notes.append(f"TensorRT {features.version} has no strongly typed networks: using "
                         f"{'/'.join(builder_flags)} builder flags; re-check accuracy on golden.npz")
    else:
        strongly_typed = True  # a TensorRT past 11 with the (ignored) flag gone: always strong
    if not features.strongly_typed and features.explicit_batch_flag:
        network_flags.append("EXPLICIT_BATCH")
    if dla is not None:
        builder_flags.append("GPU_FALLBACK")

    parser_flags: list[str] = []
    if request.version_compatible:
        if not features.version_compatible:
            raise EngineBuildError(
                f"TensorRT {features.version} has no BuilderFlag.VERSION_COMPATIBLE; "
                "build without --version-compatible"
            )
        builder_flags.append("VERSION_COMPATIBLE")
        if request.exclude_lean_runtime and features.exclude_lean_runtime:
            builder_flags.append("EXCLUDE_LEAN_RUNTIME")
        if features.native_instancenorm:
            parser_flags.append("NATIVE_INSTANCENORM")
        if device is not None and device.is_jetson:
            notes.append("version-compatible plans on JetPack are not confirmed by NVIDIA")

    level = request.optimization_level
    if level is not None and not 0 <= level <= 5:
        raise UsageError(f"--opt-level {level}: the builder optimisation level is 0..5")
    if level is None:
        level = defaults.builder_optimization_level
    if not features.optimization_level:
        if request.optimization_level is not None:
            notes.append(f"TensorRT {features.version} has no builder optimisation level; "
                         "--opt-level ignored")
        level_or_none: int | None = None
    else:
        level_or_none = level

    workspace_mib = request.workspace_mib or defaults.workspace_mib
    if workspace_mib < 16:
        raise UsageError(f"--workspace {workspace_mib} MiB is too small; give at least 16")

    batch_sizes = tuple(sorted(set(request.batch_sizes or defaults.batch_sizes)))
    profiles = compute_profiles(spec, batch_sizes, fixed_shapes=dla is not None)
    return BuildPlan(
        variant=request.variant,
        strongly_typed=strongly_typed,
        network_flags=tuple(network_flags),
        builder_flags=tuple(builder_flags),
        parser_flags=tuple(parser_flags),
        workspace_bytes=workspace_mib * 1024 * 1024,
        optimization_level=level_or_none,
        profiles=profiles,
        batch_sizes=batch_sizes,
        dla_core=dla,
        version_compatible=request.version_compatible,
        timing_cache_key=device_key(device.name if device else gpu_name, compute_capability,
                                    features.version),
        use_progress_monitor=features.progress_monitor,
        notes=tuple(notes),
    )


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,4,8"`` → ``(1, 4, 8)``; a UsageError names the bad part (the one parser:
    :func:`medfuse.runtime.batch_sizes.parse_batch_sizes`)."""
    from medfuse.runtime.batch_sizes import parse_batch_sizes as parse

    return parse(text)
