"""Process and device memory: resident set size (psutil or ``/proc``) and GPU memory (NVML).

- RSS now: ``psutil.Process().memory_info().rss`` when psutil is installed, else ``VmRSS`` in
  ``/proc/self/status``.
- RSS peak: ``VmHWM`` in ``/proc/self/status`` (the process's high-water mark since it
  started; with several combinations in one process it is the peak so far), else
  ``resource.getrusage`` (``ru_maxrss``).
- Device memory: NVML via ``pynvml`` when importable — memory this process holds on the GPU
  when the driver reports per-process use, else the device's used memory. ``None`` otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MemorySnapshot", "device_memory_mib", "peak_rss_mib", "rss_mib", "snapshot"]

logger = logging.getLogger(__name__)

_MIB = 1024.0 * 1024.0


def _status_kib(field: str) -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return None


def rss_mib() -> float | None:
    """Resident memory of this process now, in MiB (``None`` when it cannot be read)."""
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / _MIB
    except ImportError:
        kib = _status_kib("VmRSS")
        return None if kib is None else kib / 1024.0


def peak_rss_mib() -> float | None:
    """Peak resident memory of this process since it started, in MiB."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib / 1024.0
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    peak = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return peak / _MIB if sys.platform == "darwin" else peak / 1024.0  # bytes vs KiB


def device_memory_mib(index: int = 0) -> dict[str, Any] | None:
    """GPU memory via NVML: ``{"process_mib", "used_mib", "total_mib"}``; ``None`` without NVML."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # no driver / no GPU: NVML raises its own error types
        logger.debug("NVML unavailable: %s", type(exc).__name__)
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        process: float | None = None
        try:
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if p.pid == os.getpid() and p.usedGpuMemory is not None:
                    process = float(p.usedGpuMemory) / _MIB
        except Exception:  # per-process accounting is not supported everywhere (Jetson, WSL)
            process = None
        return {
            "process_mib": process,
            "used_mib": float(info.used) / _MIB,
            "total_mib": float(info.total) / _MIB,
        }
    except Exception as exc:
        logger.debug("NVML query failed: %s", type(exc).__name__)
        return None
    finally:
        with contextlib.suppress(Exception):  # shutdown errors change nothing for the caller
            pynvml.nvmlShutdown()


@dataclass(frozen=True)
class MemorySnapshot:
    """Memory at one moment: RSS now and peak (MiB), device memory (dict or ``None``)."""

    rss_mib: float | None
    peak_rss_mib: float | None
    device: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {"rss_mib": self.rss_mib, "peak_rss_mib": self.peak_rss_mib, "device": self.device}


def snapshot(device: bool = False) -> MemorySnapshot:
    """Read RSS, peak RSS and (with ``device=True``) GPU memory now."""
    return MemorySnapshot(rss_mib(), peak_rss_mib(), device_memory_mib() if device else None)
