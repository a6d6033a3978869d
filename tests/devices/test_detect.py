"""Detection from real-format outputs of each source (fixture files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfuse.devices.detect import (
    DetectionSources,
    GpuInfo,
    PowerMode,
    detect_device,
    device_from_sources,
    match_catalog,
    parse_cpuinfo,
    parse_cuda_version,
    parse_device_tree_model,
    parse_meminfo_mib,
    parse_nv_tegra_release,
    parse_nvidia_smi_csv,
    parse_nvpmodel,
)

FIX = Path(__file__).parent / "fixtures"


def text(name: str) -> str:
    return (FIX / name).read_bytes().decode("utf-8")


@pytest.mark.parametrize(("fixture", "name", "cc", "mem", "key"), [
    ("t4.nvidia-smi.csv", "Tesla T4", "7.5", 15360, "tesla-t4"),
    ("a100_40gb.nvidia-smi.csv", "NVIDIA A100-PCIE-40GB", "8.0", 40960, "a100-40gb"),
    ("h100.nvidia-smi.csv", "NVIDIA H100 80GB HBM3", "9.0", 81559, "h100"),
    ("h200.nvidia-smi.csv", "NVIDIA H200", "9.0", 143771, "h200"),
    ("l4.nvidia-smi.csv", "NVIDIA L4", "8.9", 23034, "l4"),
    ("a10.nvidia-smi.csv", "NVIDIA A10", "8.6", 23028, "a10"),
    ("rtx4090.nvidia-smi.csv", "NVIDIA GeForce RTX 4090", "8.9", 24564, "rtx-4090"),
])
def test_nvidia_smi_gpus_match_catalog(fixture: str, name: str, cc: str, mem: int, key: str) -> None:
    (gpu,) = parse_nvidia_smi_csv(text(fixture))
    assert (gpu.name, gpu.compute_capability, gpu.memory_mib) == (name, cc, mem)
    dev = device_from_sources(DetectionSources(nvidia_smi=text(fixture)))
    assert dev.kind == "gpu" and dev.catalog_key == key and not dev.memory_shared
    assert dev.driver_version == gpu.driver_version


def test_multi_gpu_uses_first_and_notes_it() -> None:
    dev = device_from_sources(DetectionSources(nvidia_smi=text("a100_80gb_x4.nvidia-smi.csv")))
    assert dev.catalog_key == "a100-80gb" and dev.gpu_count == 4
    assert any("4 GPUs" in n for n in dev.notes)


def test_unknown_gpu_is_reported_not_guessed() -> None:
    dev = device_from_sources(DetectionSources(nvidia_smi=text("unknown_gpu.nvidia-smi.csv")))
    assert dev.kind == "gpu" and dev.catalog_key is None and dev.compute_capability == "6.1"


def test_na_fields_become_none() -> None:
    (gpu,) = parse_nvidia_smi_csv(text("thor.nvidia-smi.csv"))
    assert gpu.memory_mib is None and gpu.compute_capability == "11.0"


@pytest.mark.parametrize(("prefix", "key", "l4t", "jetpack", "power"), [
    ("agx_orin_64gb", "jetson-agx-orin-64gb", "36.4.3", "6.2", PowerMode("MAXN", 0)),
    ("orin_nano_8gb", "jetson-orin-nano-8gb", "36.4.0", "6.1", PowerMode("15W", 0)),
    ("xavier_nx", "jetson-xavier-nx", "35.3.1", "5.1.1", PowerMode("MODE_20W_6CORE", 8)),
    ("thor", "jetson-thor", "38.2.0", "7.0", PowerMode("MAXN", 0)),
])
def test_jetson_detection(prefix: str, key: str, l4t: str, jetpack: str, power: PowerMode) -> None:
    src = DetectionSources(
        device_tree_model=text(f"{prefix}.device-tree-model"),
        nv_tegra_release=text(f"{prefix}.nv_tegra_release"),
        nvpmodel=text(f"{prefix}.nvpmodel"),
        meminfo=text(f"{prefix}.meminfo"),
        cpuinfo=text("agx_orin.cpuinfo"),
        machine="aarch64",
    )
    dev = device_from_sources(src)
    assert dev.kind == "jetson" and dev.memory_shared
    assert (dev.catalog_key, dev.l4t, dev.jetpack, dev.power_mode) == (key, l4t, jetpack, power)
    assert dev.cpu_model == "aarch64"


def test_agx_orin_32_vs_64_by_memory() -> None:
    name = parse_device_tree_model(text("agx_orin_64gb.device-tree-model"))
    assert name == "NVIDIA Jetson AGX Orin Developer Kit"
    e64 = match_catalog(name, memory_mib=62828)
    e32 = match_catalog(name, memory_mib=30536)
    assert e64 is not None and e32 is not None
    assert (e64.key, e32.key) == ("jetson-agx-orin-64gb", "jetson-agx-orin-32gb")


def test_name_matching_is_whole_token() -> None:
    a10 = match_catalog("NVIDIA A10")
    a100 = match_catalog("NVIDIA A100-SXM4-80GB", memory_mib=81920)
    assert a10 is not None and a10.key == "a10"
    assert a100 is not None and a100.key == "a100-80gb"
    assert match_catalog("NVIDIA L40S") is None


def test_parsers_on_other_sources() -> None:
    assert parse_cuda_version(text("cuda-12.6.version.json")) == "12.6.68"
    assert parse_cuda_version(text("cuda-10.2.version.txt")) == "10.2.300"
    assert parse_cpuinfo(text("x86_epyc.cpuinfo")) == "AMD EPYC 9R14 96-Core Processor"
    assert parse_cpuinfo(text("agx_orin.cpuinfo")) is None
    assert parse_meminfo_mib(text("agx_orin_64gb.meminfo")) == 64335836 // 1024
    assert parse_nv_tegra_release("garbage") is None
    assert parse_nvpmodel("NVPM ERROR: failed") is None


def test_cpu_only_machine() -> None:
    dev = device_from_sources(DetectionSources(cpuinfo=text("x86_epyc.cpuinfo"), cpu_count=2))
    assert dev.kind == "cpu" and not dev.has_gpu
    assert dev.cpu_model == "AMD EPYC 9R14 96-Core Processor" and dev.cpu_cores == 2


def test_nvml_takes_precedence() -> None:
    gpus = (GpuInfo("NVIDIA L4", "8.9", 23034, "550.90.07"),)
    dev = device_from_sources(DetectionSources(nvml_gpus=gpus, nvidia_smi=text("t4.nvidia-smi.csv")))
    assert dev.catalog_key == "l4" and "NVML" in dev.sources


def test_detect_device_here_never_raises() -> None:
    dev = detect_device()
    assert dev.kind in ("cpu", "gpu", "jetson")
    assert dev.cpu_cores is None or dev.cpu_cores >= 1
    assert set(dev.to_dict()) >= {"kind", "name", "catalog_key"}
