"""The device fingerprint attached to every benchmark result and validation report.

It says what ran the benchmark — CPU model and cores, GPU name / compute capability / driver,
TensorRT / CUDA / ONNX Runtime / medfuse versions, JetPack and power mode, Python / numpy,
OS — and which model (bundle name and version, variant hashes). GPU and Jetson facts come from
:func:`medfuse.devices.detect.detect_device`.

Results get shared, so the host name is never included raw: ``host_id`` is a truncated
SHA-256 of it under a fixed salt (it tells two result files from the same machine apart,
nothing more). No user names or paths are recorded.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import platform
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["bundle_facts", "device_fingerprint", "fingerprint_id", "hash_hostname"]

logger = logging.getLogger(__name__)

_HOST_SALT = b"medfuse-bench-host-v1:"


def hash_hostname(hostname: str | None = None) -> str:
    """A 16-hex-digit salted SHA-256 of the host name (never the name itself)."""
    name = socket.gethostname() if hostname is None else hostname
    return hashlib.sha256(_HOST_SALT + name.encode("utf-8")).hexdigest()[:16]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _onnxruntime_version() -> str | None:
    for dist in ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml"):
        v = _version(dist)
        if v:
            return v
    return None


def device_fingerprint(bundle: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Describe this machine (and the bundle measured) as a JSON-ready dict.

    Parameters
    ----------
    bundle:
        :func:`bundle_facts` of the bundle measured (``None``: no bundle section).

    Returns
    -------
    dict
        ``cpu_model``, ``cpu_cores``, ``machine``, ``os``, ``python``, ``numpy``,
        ``onnxruntime``, ``tensorrt``, ``cuda``, ``medfuse``, ``device`` (kind, name,
        GPU facts, JetPack, power mode), ``host_id`` (hashed) and ``bundle``.
    """
    import medfuse

    fp: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "onnxruntime": _onnxruntime_version(),
        "medfuse": medfuse.__version__,
        "host_id": hash_hostname(),
    }
    try:
        from medfuse.devices.detect import detect_device

        dev = detect_device().to_dict()
    except Exception as exc:  # a fingerprint must never stop a benchmark
        logger.warning("device detection failed (%s)", type(exc).__name__)
        dev = {"kind": "cpu", "name": fp["cpu_model"], "notes": [type(exc).__name__]}
    fp["device"] = {
        k: dev.get(k)
        for k in (
            "kind",
            "name",
            "compute_capability",
            "memory_mib",
            "gpu_count",
            "driver_version",
            "cuda_version",
            "tensorrt_version",
            "l4t",
            "jetpack",
            "power_mode",
            "catalog_key",
        )
    }
    fp["tensorrt"] = dev.get("tensorrt_version")
    fp["cuda"] = dev.get("cuda_version")
    if bundle is not None:
        fp["bundle"] = dict(bundle)
    return fp


def bundle_facts(bundle: Any) -> dict[str, Any]:
    """Model name / version and every variant's sha256 of an opened bundle."""
    spec = getattr(bundle, "spec", None)
    manifest = getattr(bundle, "manifest", None)
    variants = getattr(manifest, "variants", None) or {}
    return {
        "model_name": getattr(spec, "name", None),
        "model_version": getattr(spec, "version", None),
        "variants": {str(p): str(v.sha256) for p, v in variants.items()},
    }


def fingerprint_id(fp: Mapping[str, Any]) -> str:
    """A short file-name-safe id: ``<machine>-<device name>-<hash8>`` (hash of the fingerprint)."""
    dev = fp.get("device") or {}
    name = str(dev.get("name") or fp.get("cpu_model") or "unknown")
    slug = re.sub(r"[^a-z0-9]+", "", name.lower())[:24] or "unknown"
    keys = ("cpu_model", "cpu_cores", "machine", "os", "device", "host_id")
    digest = hashlib.sha256(repr(sorted((k, repr(fp.get(k))) for k in keys)).encode()).hexdigest()
    return f"{fp.get('machine') or platform.machine()}-{slug}-{digest[:8]}"
