"""Preflight refuses plans that do not fit this device, before any deserialization."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from medfuse.bundle.manifest import EngineRecord
from medfuse.devices.detect import DetectedDevice
from medfuse.devices.preflight import preflight_engine, select_engine, tensorrt_runs_plan
from medfuse.errors import IncompatibleBundleError

PLAN_BYTES = b"not really a plan, but bytes with a known hash"
ORIN = DetectedDevice(kind="jetson", name="Jetson AGX Orin 64GB", compute_capability="8.7",
                      memory_shared=True, tensorrt_version="10.3.0.30",
                      catalog_key="jetson-agx-orin-64gb")
NANO = DetectedDevice(kind="jetson", name="Jetson Orin Nano 8GB", compute_capability="8.7",
                      tensorrt_version="10.3.0.30", catalog_key="jetson-orin-nano-8gb")
CPU = DetectedDevice(kind="cpu", name="AMD EPYC", cpu_cores=2)


def record(**kw: object) -> EngineRecord:
    fields: dict[str, object] = dict(
        key="fp16-sm87-trt10.3.0.30-gpu-b8-0123456789ab", file="engines/x.plan",
        sha256=hashlib.sha256(PLAN_BYTES).hexdigest(), variant="fp16",
        tensorrt_version="10.3.0.30", gpu_name="Jetson AGX Orin 64GB",
        compute_capability="8.7", profile={"batch_sizes": [1, 4, 8]},
    )
    fields.update(kw)
    return EngineRecord(**fields)  # type: ignore[arg-type]


def test_matching_plan_passes(tmp_path: Path) -> None:
    plan = tmp_path / "x.plan"
    plan.write_bytes(PLAN_BYTES)
    preflight_engine(record(), ORIN, "10.3.0.30", plan_path=plan)


@pytest.mark.parametrize(("rec", "device", "trt", "expected", "found"), [
    (record(compute_capability="8.6"), ORIN, "10.3.0.30", "8.6", "8.7"),
    (record(), ORIN, "10.3.0.26", "10.3.0.30", "10.3.0.26"),
    (record(), ORIN, "11.4.1.5", "10.3.0.30", "11.4.1.5"),
    (record(dla_core=0, variant="int8"), NANO, "10.3.0.30", "DLA core 0", "0 DLA core"),
])
def test_mismatches_are_refused_with_rebuild_command(
        rec: EngineRecord, device: DetectedDevice, trt: str, expected: str, found: str) -> None:
    with pytest.raises(IncompatibleBundleError) as info:
        preflight_engine(rec, device, trt, bundle_label="model.medfuse")
    msg = str(info.value)
    assert expected in msg and found in msg
    assert f"medfuse build model.medfuse --variant {rec.variant}" in msg


def test_wrong_hash_is_refused(tmp_path: Path) -> None:
    plan = tmp_path / "x.plan"
    plan.write_bytes(PLAN_BYTES + b"!")
    with pytest.raises(IncompatibleBundleError, match=r"sha256.*medfuse build BUNDLE --variant fp16"):
        preflight_engine(record(), ORIN, "10.3.0.30", plan_path=plan)


def test_no_gpu_is_refused() -> None:
    with pytest.raises(IncompatibleBundleError, match=r"has none.*ONNX Runtime"):
        preflight_engine(record(), CPU, "10.3.0.30")


@pytest.mark.parametrize(("built", "runtime", "vc", "ok"), [
    ("10.3.0.30", "10.3.0.30", False, True),
    ("10.3.0.30", "10.3.0", False, True),
    ("10.3.0.30", "10.3.1.2", False, False),
    ("11.0.0.1", "11.4.1.5", True, True),
    ("11.4.1.5", "11.0.0.1", True, False),
    ("10.16.2.10", "11.4.1.5", True, True),
    ("10.16.2.10", "11.4.1.5", False, False),
    ("8.6.1.6", "10.3.0.30", True, True),
    ("8.6.1.6", "11.4.1.5", True, False),
])
def test_version_rules(built: str, runtime: str, vc: bool, ok: bool) -> None:
    assert tensorrt_runs_plan(built, runtime, version_compatible=vc) is ok


class _Manifest:
    def __init__(self, engines: dict[str, EngineRecord]) -> None:
        self.engines = engines
        self.variants: dict[str, object] = {}


class _Bundle:
    def __init__(self, *records: EngineRecord) -> None:
        self.manifest = _Manifest({r.key: r for r in records})


def test_select_engine_prefers_fit_and_explains() -> None:
    fp16 = record()
    int8_other_gpu = record(key="int8-sm86-x", variant="int8", compute_capability="8.6")
    choice = select_engine(_Bundle(fp16, int8_other_gpu), ORIN, "auto")
    assert choice.record is fp16
    assert any("8.6" in r for r in choice.reasons)


def test_select_engine_none_with_reason() -> None:
    assert select_engine(_Bundle(), ORIN, "auto").record is None
    choice = select_engine(_Bundle(record()), CPU, "fp16")
    assert choice.record is None and "TensorRT is not installed" in choice.reason
    choice = select_engine(_Bundle(record()), ORIN, "int8")
    assert choice.record is None and "--variant int8" in choice.reason
