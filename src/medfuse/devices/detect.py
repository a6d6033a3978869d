"""Detect the device medfuse runs on: Jetson module, discrete GPU, or plain CPU.

Detection reads what the system already says about itself — ``/proc/device-tree/model`` and
``/etc/nv_tegra_release`` on Jetson, ``nvpmodel -q`` for the power mode, NVML (``pynvml``)
or ``nvidia-smi`` on GPU machines, ``/usr/local/cuda/version.json``, the installed TensorRT
distribution, ``/proc/cpuinfo`` and ``/proc/meminfo`` — and matches the result to a
:class:`~medfuse.devices.catalog.CatalogEntry`.

Every parser takes text (so tests feed real outputs kept as fixture files), and
:func:`device_from_sources` turns the collected texts into a :class:`DetectedDevice` without
touching the system. :func:`detect_device` gathers the texts and never raises.

Only stdlib here: this module is part of the runtime tier.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from medfuse.devices.catalog import Catalog, CatalogEntry, load_catalog

__all__ = [
    "DetectedDevice",
    "DetectionSources",
    "GpuInfo",
    "PowerMode",
    "detect_device",
    "device_from_sources",
    "gather_sources",
    "installed_tensorrt_version",
    "match_catalog",
    "parse_cpuinfo",
    "parse_cuda_version",
    "parse_device_tree_model",
    "parse_meminfo_mib",
    "parse_nv_tegra_release",
    "parse_nvidia_smi_csv",
    "parse_nvpmodel",
]

logger = logging.getLogger(__name__)

DeviceKind = Literal["jetson", "gpu", "cpu"]
NVIDIA_SMI_QUERY = (
    "nvidia-smi",
    "--query-gpu=name,compute_cap,memory.total,driver_version",
    "--format=csv,noheader",
)
_NA = {"", "[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]"}
# TensorRT's Python distributions, newest naming first (Jetson's apt package has no dist-info).
_TRT_DISTS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11", "tensorrt_lean")


# -- parsers (text in, values out) ---------------------------------------------------------------


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML / ``nvidia-smi`` reports it; fields a source left out are ``None``."""

    name: str
    compute_capability: str | None = None
    memory_mib: int | None = None
    driver_version: str | None = None


@dataclass(frozen=True)
class PowerMode:
    """A Jetson power mode from ``nvpmodel -q``: its name (``"MAXN"``, ``"15W"``) and id."""

    name: str
    id: int | None = None


def _value(text: str) -> str | None:
    text = text.strip()
    return None if text.lower() in _NA else text


def parse_nvidia_smi_csv(text: str) -> list[GpuInfo]:
    """Parse ``nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version
    --format=csv,noheader`` output (one line per GPU; ``[N/A]`` fields become ``None``)."""
    gpus: list[GpuInfo] = []
    for line in text.splitlines():
        if not line.strip() or "," not in line:
            continue
        # GPU names contain no commas; split from the right to be safe anyway.
        parts = line.rsplit(",", 3)
        if len(parts) != 4:
            continue
        name, cc, mem, driver = (p.strip() for p in parts)
        mem_v = _value(mem)
        mem_mib = None
        if mem_v is not None:
            m = re.match(r"^(\d+)\s*MiB$", mem_v)
            mem_mib = int(m.group(1)) if m else None
        cc_v = _value(cc)
        if cc_v is not None and not re.match(r"^\d+\.\d+$", cc_v):
            cc_v = None
        gpus.append(GpuInfo(name=name, compute_capability=cc_v, memory_mib=mem_mib,
                            driver_version=_value(driver)))
    return gpus


def parse_device_tree_model(text: str) -> str | None:
    """The model string of ``/proc/device-tree/model`` (NUL-terminated on disk)."""
    model = text.replace("\x00", "").strip()
    return model or None


def parse_nv_tegra_release(text: str) -> str | None:
    """The L4T version in ``/etc/nv_tegra_release``: ``"# R36 (release), REVISION: 4.3, ..."``
    → ``"36.4.3"``; a two-part revision (``4.0``) is kept as given (``"36.4.0"``)."""
    m = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not m:
        return None
    revision = m.group(2).strip(".")
    return f"{m.group(1)}.{revision}"


def parse_nvpmodel(text: str) -> PowerMode | None:
    """The power mode in ``nvpmodel -q`` output (``NV Power Mode: MAXN`` then the mode id)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        m = re.match(r"^NV Power Mode:\s*(.+)$", line)
        if m:
            mode_id = None
            if i + 1 < len(lines) and lines[i + 1].isdigit():
                mode_id = int(lines[i + 1])
            return PowerMode(name=m.group(1).strip(), id=mode_id)
    return None


def parse_cuda_version(text: str) -> str | None:
    """The CUDA toolkit version from ``version.json`` (CUDA ≥ 11.1) or ``version.txt``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
            version = data["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            return None
        return str(version)
    m = re.search(r"CUDA Version\s+([\d.]+)", text)
    return m.group(1) if m else None


def parse_cpuinfo(text: str) -> str | None:
    """The CPU model from ``/proc/cpuinfo`` (x86 ``model name``; Arm ``Model``/``Hardware``)."""
    for key in ("model name", "Model", "Hardware", "Processor"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, flags=re.MULTILINE)
        if m and m.group(1).strip():
            return m.group(1).strip()
    return None


def parse_meminfo_mib(text: str) -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in MiB."""
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", text, flags=re.MULTILINE)
    return int(m.group(1)) // 1024 if m else None


# -- matching ------------------------------------------------------------------------------------


def _name_matches(pattern: str, name: str) -> bool:
    # Whole-token match: "A10" must not match "A100", "T4" not "RTX 4090"'s neighbours.
    pat = r"(?<![A-Za-z0-9])" + re.escape(pattern) + r"(?![A-Za-z0-9])"
    return re.search(pat, name, flags=re.IGNORECASE) is not None


def match_catalog(
    name: str,
    *,
    compute_capability: str | None = None,
    memory_mib: int | None = None,
    catalog: Catalog | None = None,
) -> CatalogEntry | None:
    """The catalog entry for a reported device name, or ``None`` when none fits.

    Entries whose ``match`` patterns occur in ``name`` (whole tokens, any case) are candidates;
    a known compute capability narrows them; memory picks between sizes of one module
    (Orin NX 8 GB vs 16 GB). Without memory, the smallest variant is chosen: its build
    defaults are the safe ones.
    """
    catalog = catalog or load_catalog()
    cands = [e for e in catalog.devices if any(_name_matches(p, name) for p in e.match)]
    if compute_capability is not None:
        same_cc = [e for e in cands if e.compute_capability == compute_capability]
        cands = same_cc or cands
    if not cands:
        return None
    if memory_mib is None or memory_mib <= 0:
        return min(cands, key=lambda e: e.memory_gib)
    gib = memory_mib / 1024.0
    return min(cands, key=lambda e: abs(math.log(gib / e.memory_gib)))


# -- the detected device -------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectedDevice:
    """What this machine is, as far as detection could tell.

    ``kind`` is ``"jetson"``, ``"gpu"`` (a discrete GPU) or ``"cpu"``. ``catalog_key`` is the
    matched catalog entry (``None`` for an unknown GPU or a CPU). ``sources`` names where the
    facts came from; ``notes`` holds what could not be read.
    """

    kind: DeviceKind
    name: str
    compute_capability: str | None = None
    memory_mib: int | None = None
    memory_shared: bool = False
    gpu_count: int = 0
    driver_version: str | None = None
    cuda_version: str | None = None
    tensorrt_version: str | None = None
    l4t: str | None = None
    jetpack: str | None = None
    power_mode: PowerMode | None = None
    cpu_model: str | None = None
    cpu_cores: int | None = None
    catalog_key: str | None = None
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def has_gpu(self) -> bool:
        return self.kind in ("jetson", "gpu")

    def catalog_entry(self, catalog: Catalog | None = None) -> CatalogEntry | None:
        """The matched catalog entry, if any."""
        if self.catalog_key is None:
            return None
        return (catalog or load_catalog()).entry(self.catalog_key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "compute_capability": self.compute_capability,
            "memory_mib": self.memory_mib,
            "memory_shared": self.memory_shared,
            "gpu_count": self.gpu_count,
            "driver_version": self.driver_version,
            "cuda_version": self.cuda_version,
            "tensorrt_version": self.tensorrt_version,
            "l4t": self.l4t,
            "jetpack": self.jetpack,
            "power_mode": None if self.power_mode is None
            else {"name": self.power_mode.name, "id": self.power_mode.id},
            "cpu_model": self.cpu_model,
            "cpu_cores": self.cpu_cores,
            "catalog_key": self.catalog_key,
            "sources": list(self.sources),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class DetectionSources:
    """The raw texts detection reads; ``None`` where a source is absent on this machine."""

    device_tree_model: str | None = None
    nv_tegra_release: str | None = None
    nvpmodel: str | None = None
    nvidia_smi: str | None = None
    nvml_gpus: tuple[GpuInfo, ...] | None = None
    cuda_version: str | None = None
    cpuinfo: str | None = None
    meminfo: str | None = None
    tensorrt_version: str | None = None
    cpu_count: int | None = None
    machine: str = ""


def _jetson(src: DetectionSources, catalog: Catalog, base: DetectedDevice) -> DetectedDevice:
    model = parse_device_tree_model(src.device_tree_model or "") or "Jetson (unknown module)"
    l4t = parse_nv_tegra_release(src.nv_tegra_release or "")
    release = catalog.jetpack_for_l4t(l4t) if l4t else None
    mem = parse_meminfo_mib(src.meminfo or "")
    gpus = list(src.nvml_gpus or ()) or parse_nvidia_smi_csv(src.nvidia_smi or "")
    cc = gpus[0].compute_capability if gpus else None
    entry = match_catalog(model, compute_capability=cc, memory_mib=mem, catalog=catalog)
    notes = list(base.notes)
    if entry is None:
        notes.append(f"Jetson model {model!r} is not in the catalog")
    if l4t and release is None:
        notes.append(f"L4T {l4t} is not in the JetPack table")
    sources = [*base.sources, "/proc/device-tree/model"]
    if src.nv_tegra_release is not None:
        sources.append("/etc/nv_tegra_release")
    power = parse_nvpmodel(src.nvpmodel) if src.nvpmodel is not None else None
    if power is not None:
        sources.append("nvpmodel -q")
    return replace(
        base,
        kind="jetson",
        name=entry.name if entry else model,
        compute_capability=cc or (entry.compute_capability if entry else None),
        memory_mib=mem,
        memory_shared=True,
        gpu_count=1,
        cuda_version=base.cuda_version or (release.cuda if release else None),
        l4t=l4t,
        jetpack=release.jetpack if release else None,
        power_mode=power,
        catalog_key=entry.key if entry else None,
        sources=tuple(sources),
        notes=tuple(notes),
    )


def device_from_sources(src: DetectionSources, catalog: Catalog | None = None) -> DetectedDevice:
    """Decide what the device is from collected texts (pure: reads nothing itself)."""
    catalog = catalog or load_catalog()
    sources: list[str] = []
    cpu_model = parse_cpuinfo(src.cpuinfo or "") or (src.machine or None)
    if src.cpuinfo:
        sources.append("/proc/cpuinfo")
    cuda = parse_cuda_version(src.cuda_version) if src.cuda_version else None
    base = DetectedDevice(
        kind="cpu",
        name=cpu_model or "CPU",
        cpu_model=cpu_model,
        cpu_cores=src.cpu_count,
        memory_mib=parse_meminfo_mib(src.meminfo or ""),
        cuda_version=cuda,
        tensorrt_version=src.tensorrt_version,
        sources=tuple(sources),
    )
    model = parse_device_tree_model(src.device_tree_model or "")
    if src.nv_tegra_release is not None or (model is not None and "jetson" in model.lower()):
        return _jetson(src, catalog, base)
    gpus = list(src.nvml_gpus) if src.nvml_gpus else []
    if gpus:
        sources.append("NVML")
    elif src.nvidia_smi:
        gpus = parse_nvidia_smi_csv(src.nvidia_smi)
        sources.append("nvidia-smi")
    if not gpus:
        return base
    gpu = gpus[0]
    entry = match_catalog(gpu.name, compute_capability=gpu.compute_capability,
                          memory_mib=gpu.memory_mib, catalog=catalog)
    notes = [] if entry else [f"GPU {gpu.name!r} is not in the catalog; using generic defaults"]
    if len(gpus) > 1:
        notes.append(f"{len(gpus)} GPUs found; medfuse uses GPU 0")
    return replace(
        base,
        kind="gpu",
        name=gpu.name,
        compute_capability=gpu.compute_capability or (entry.compute_capability if entry else None),
        memory_mib=gpu.memory_mib,
        memory_shared=False,
        gpu_count=len(gpus),
        driver_version=gpu.driver_version,
        catalog_key=entry.key if entry else None,
        sources=tuple(sources),
        notes=tuple(notes),
    )


# -- gathering from this machine -----------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        return Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def _run(cmd: Sequence[str], timeout: float = 10.0) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                             check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("%s failed: %s", cmd[0], type(exc).__name__)
        return None
    if out.returncode != 0:
        logger.debug("%s exited with %d", cmd[0], out.returncode)
        return None
    return out.stdout


def _nvml_gpus() -> tuple[GpuInfo, ...] | None:
    """GPUs from NVML through ``pynvml`` when it is installed and a driver answers."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # pynvml raises NVMLError subclasses; absence of a driver is normal
        return None
    try:
        gpus = []
        driver = pynvml.nvmlSystemGetDriverVersion()
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h).total
            gpus.append(GpuInfo(
                name=name.decode() if isinstance(name, bytes) else str(name),
                compute_capability=f"{major}.{minor}",
                memory_mib=int(mem) // (1024 * 1024),
                driver_version=driver.decode() if isinstance(driver, bytes) else str(driver),
            ))
        return tuple(gpus)
    except Exception as exc:  # a partial NVML (Jetson) answers some calls only
        logger.debug("NVML query failed: %s", type(exc).__name__)
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            logger.debug("nvmlShutdown failed")


def installed_tensorrt_version() -> str | None:
    """The installed TensorRT's version, without importing it when a distribution says it.

    Falls back to importing ``tensorrt`` (Jetson's apt package has no pip metadata); a
    namespace package with no ``__version__`` (e.g. type stubs only) counts as not installed.
    """
    for dist in _TRT_DISTS:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    if not Path("/etc/nv_tegra_release").exists():
        return None
    try:
        import tensorrt
    except Exception:  # a broken install raises anything from OSError to AttributeError
        return None
    version = getattr(tensorrt, "__version__", None)
    return str(version) if version else None


def gather_sources() -> DetectionSources:
    """Read every detection source present on this machine."""
    tegra = _read("/etc/nv_tegra_release")
    cuda = _read("/usr/local/cuda/version.json") or _read("/usr/local/cuda/version.txt")
    nvml = _nvml_gpus()
    smi = None if nvml else _run(NVIDIA_SMI_QUERY)
    return DetectionSources(
        device_tree_model=_read("/proc/device-tree/model"),
        nv_tegra_release=tegra,
        nvpmodel=_run(("nvpmodel", "-q"), timeout=5.0) if tegra is not None else None,
        nvidia_smi=smi,
        nvml_gpus=nvml,
        cuda_version=cuda,
        cpuinfo=_read("/proc/cpuinfo"),
        meminfo=_read("/proc/meminfo"),
        tensorrt_version=installed_tensorrt_version(),
        cpu_count=os.cpu_count(),
        machine=platform.machine(),
    )


def detect_device(catalog: Catalog | None = None) -> DetectedDevice:
    """Detect this machine's device. Never raises: on failure it reports a CPU with a note.

    Returns
    -------
    DetectedDevice
        ``kind="jetson"`` on a Jetson, ``"gpu"`` with an NVIDIA GPU, else ``"cpu"`` with the
        CPU model and core count.
    """
    try:
        return device_from_sources(gather_sources(), catalog)
    except Exception as exc:  # detection must never take the caller down
        logger.warning("device detection failed (%s); assuming a plain CPU", type(exc).__name__)
        return DetectedDevice(
            kind="cpu", name=platform.machine() or "CPU", cpu_cores=os.cpu_count(),
            notes=(f"detection failed: {type(exc).__name__}",),
        )
