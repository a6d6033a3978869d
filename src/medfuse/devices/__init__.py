"""Devices: the catalog, detection of this machine, engine cache keys and TensorRT builds.

- :func:`load_catalog` — Jetson modules and GPUs (data in ``catalog.json``) + the JetPack table.
- :func:`detect_device` — what this machine is (Jetson / GPU / CPU); never raises.
- :class:`EngineCacheKey`, :func:`compute_profiles` — what makes a plan valid only here.
- :func:`features_from_module`, :func:`plan_build` — the TensorRT 8.6 / 10.x / 11.x build decision
  in plain code; :func:`build_engine` applies it and stores the plan in a bundle.
- :func:`preflight_engine`, :func:`select_engine` — refuse a plan that does not fit this device.

Importing this package imports no TensorRT, CUDA binding, torch or onnx.
"""

from __future__ import annotations

from medfuse.devices.catalog import (
    BuildDefaults,
    Catalog,
    CatalogEntry,
    JetPackRelease,
    load_catalog,
)
from medfuse.devices.detect import DetectedDevice, GpuInfo, PowerMode, detect_device, match_catalog
from medfuse.devices.engines import BuiltEngine, build_engine, check_build_environment
from medfuse.devices.keys import EngineCacheKey, OptimizationProfile, compute_profiles, device_key
from medfuse.devices.plan import (
    BuildPlan,
    BuildRequest,
    TrtFeatures,
    features_from_module,
    plan_build,
)
from medfuse.devices.preflight import EngineChoice, preflight_engine, select_engine

__all__ = [
    "BuildDefaults",
    "BuildPlan",
    "BuildRequest",
    "BuiltEngine",
    "Catalog",
    "CatalogEntry",
    "DetectedDevice",
    "EngineCacheKey",
    "EngineChoice",
    "GpuInfo",
    "JetPackRelease",
    "OptimizationProfile",
    "PowerMode",
    "TrtFeatures",
    "build_engine",
    "check_build_environment",
    "compute_profiles",
    "detect_device",
    "device_key",
    "features_from_module",
    "load_catalog",
    "match_catalog",
    "plan_build",
    "preflight_engine",
    "select_engine",
]
