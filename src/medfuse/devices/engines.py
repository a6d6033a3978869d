"""Build a TensorRT engine for this device from a bundle's ONNX variant and store it there.

:func:`build_engine` = detect the device → check the environment (GPU, TensorRT) → probe
TensorRT's features → :func:`~medfuse.devices.plan.plan_build` → reuse the bundle's timing
cache for this device key → :func:`~medfuse.devices.trt_build.build_serialized_engine` →
store ``engines/<key>.plan`` + its :class:`~medfuse.bundle.EngineRecord` and the updated
``timing-caches/<device key>.cache`` with :func:`~medfuse.bundle.update_bundle`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from medfuse.bundle import Bundle, EngineRecord, open_bundle, update_bundle
from medfuse.devices.detect import DetectedDevice, detect_device
from medfuse.devices.keys import EngineCacheKey, profiles_to_dict
from medfuse.devices.plan import BuildPlan, BuildRequest, features_from_module, plan_build
from medfuse.devices.trt_build import (
    BuildResult,
    ProgressCallback,
    build_serialized_engine,
    load_tensorrt,
)
from medfuse.errors import EngineBuildError

__all__ = ["BuiltEngine", "build_engine", "check_build_environment"]

logger = logging.getLogger(__name__)


def check_build_environment(detected: DetectedDevice) -> None:
    """Refuse early, with what is missing and how to get it, when no GPU is here.

    Raises
    ------
    EngineBuildError
        No NVIDIA GPU (or Jetson) was detected.
    """
    if detected.has_gpu:
        return
    raise EngineBuildError(
        f"no NVIDIA GPU was found on this machine (detected: {detected.name}, "
        f"{detected.cpu_cores or '?'} CPU cores). A TensorRT engine is built on the device it "
        "will run on: run `medfuse build` on the Jetson (TensorRT comes with JetPack) or on the "
        "GPU server (pip install 'medfuse[tensorrt]'). On this machine, use the ONNX Runtime "
        "backend (`medfuse run --backend onnxruntime`)."
    )


@dataclass(frozen=True)
class BuiltEngine:
    """What :func:`build_engine` produced: the updated bundle, the record, the plan decisions."""

    bundle: Bundle
    record: EngineRecord
    plan: BuildPlan
    result: BuildResult


def build_engine(
    bundle: Bundle | str | Path,
    request: BuildRequest,
    *,
    detected: DetectedDevice | None = None,
    progress: ProgressCallback | None = None,
) -> BuiltEngine:
    """Build the TensorRT engine ``request`` asks for on this device and add it to ``bundle``.

    Parameters
    ----------
    bundle:
        A writable bundle, or its path.
    request:
        Variant, batch sizes, DLA core, workspace, optimisation level, version compatibility.
    detected:
        This device (detected when omitted).
    progress:
        ``(phase, done, total)`` callback driven by TensorRT's progress monitor.

    Raises
    ------
    EngineBuildError
        No GPU here, TensorRT too old, parser or builder failure.
    MissingDependencyError
        TensorRT is not installed.
    BundleError
        The bundle or its variant cannot be used (missing, damaged, read-only).
    """
    detected = detected or detect_device()
    check_build_environment(detected)
    trt = load_tensorrt()
    features = features_from_module(trt)
    bundle = bundle if isinstance(bundle, Bundle) else open_bundle(bundle)
    onnx_path = bundle.variant_file(request.variant)
    variant_sha = bundle.manifest.variants[request.variant].sha256
    if detected.compute_capability is None:
        raise EngineBuildError(
            f"the compute capability of {detected.name} could not be detected; install the "
            "NVIDIA driver tools (nvidia-smi) or pynvml"
        )
    entry = detected.catalog_entry()
    plan = plan_build(features, request, entry, bundle.spec, gpu_name=detected.name,
                      compute_capability=detected.compute_capability)
    for note in plan.notes:
        logger.warning("%s", note)

    cache_bytes: bytes | None = None
    if plan.timing_cache_file in bundle.manifest.artifacts:
        cache_bytes = bundle.file(plan.timing_cache_file).read_bytes()
        logger.info("reusing timing cache %s (%d bytes)", plan.timing_cache_file, len(cache_bytes))

    result = build_serialized_engine(plan, onnx_path, timing_cache=cache_bytes, progress=progress)
    level = plan.optimization_level if plan.optimization_level is not None else 3
    profile = profiles_to_dict(plan.profiles, plan.batch_sizes)
    key = EngineCacheKey(
        variant=request.variant,
        variant_sha256=variant_sha,
        tensorrt_version=features.version,
        gpu_name=detected.name,
        compute_capability=detected.compute_capability,
        dla_core=plan.dla_core,
        profile=profile,
        builder_optimization_level=level,
        version_compatible=plan.version_compatible,
    )
    record = EngineRecord(
        key=key.text,
        variant=request.variant,
        tensorrt_version=features.version,
        gpu_name=detected.name,
        compute_capability=detected.compute_capability,
        dla_core=plan.dla_core,
        profile=profile,
        builder_optimization_level=level,
        version_compatible=plan.version_compatible,
        cuda_version=detected.cuda_version,
        driver_version=detected.driver_version,
        jetpack=detected.jetpack,
        extra={
            "variant_sha256": variant_sha,
            "device_key": plan.timing_cache_key,
            "catalog_key": detected.catalog_key,
            "strongly_typed": plan.strongly_typed,
            "network_flags": list(plan.network_flags),
            "builder_flags": list(plan.builder_flags),
            "workspace_mib": plan.workspace_bytes // (1024 * 1024),
            "optimization_level_applied": plan.optimization_level is not None,
            "build_seconds": round(result.seconds, 2),
            "timing_cache_reused": result.timing_cache_reused,
        },
    )
    with tempfile.TemporaryDirectory(prefix="medfuse-build-") as tmp:
        plan_file = Path(tmp) / "engine.plan"
        plan_file.write_bytes(result.plan)
        cache_file = Path(tmp) / "timing.cache"
        cache_file.write_bytes(result.timing_cache)
        updated = update_bundle(
            bundle,
            add_engines={key.text: (record, plan_file)},
            add_files={plan.timing_cache_file: cache_file},
        )
    stored = updated.manifest.engines[key.text]
    logger.info("stored engine %s (%d bytes, %.1f s)", key.text, len(result.plan), result.seconds)
    return BuiltEngine(bundle=updated, record=stored, plan=plan, result=result)
