"""The shipped device catalog is complete and self-consistent."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from medfuse.devices.catalog import load_catalog, parse_catalog
from medfuse.errors import ManifestError

REQUIRED_KEYS = {
    "jetson-agx-xavier", "jetson-xavier-nx", "jetson-orin-nano-4gb", "jetson-orin-nano-8gb",
    "jetson-orin-nx-8gb", "jetson-orin-nx-16gb", "jetson-agx-orin-32gb", "jetson-agx-orin-64gb",
    "jetson-thor", "tesla-t4", "l4", "a10", "a100-40gb", "a100-80gb", "h100", "h200", "rtx-4090",
}


def test_catalog_has_every_required_device() -> None:
    assert {e.key for e in load_catalog().devices} >= REQUIRED_KEYS


def test_every_entry_has_sane_fields() -> None:
    for e in load_catalog().devices:
        assert re.fullmatch(r"\d+\.\d+", e.compute_capability), e.key
        assert e.memory_gib > 0 and e.dla_cores >= 0 and e.match, e.key
        assert set(e.precisions) <= {"fp32", "fp16", "bf16", "int8", "fp8"}, e.key
        bd = e.build_defaults
        assert 16 <= bd.workspace_mib <= e.memory_gib * 1024 // 2, e.key
        assert 0 <= bd.builder_optimization_level <= 5, e.key
        assert bd.batch_sizes and min(bd.batch_sizes) >= 1, e.key
        assert e.memory_shared == e.is_jetson, e.key


def test_known_compute_capabilities() -> None:
    # Independent reference: NVIDIA's CUDA GPU compute capability table.
    cat = load_catalog()
    expected = {"jetson-agx-xavier": "7.2", "jetson-agx-orin-64gb": "8.7", "tesla-t4": "7.5",
                "a100-80gb": "8.0", "a10": "8.6", "l4": "8.9", "h100": "9.0", "rtx-4090": "8.9",
                "jetson-thor": "11.0"}
    for key, cc in expected.items():
        assert cat.entry(key).compute_capability == cc


def test_dla_only_where_hardware_has_it() -> None:
    cat = load_catalog()
    assert cat.entry("jetson-orin-nano-8gb").dla_cores == 0
    assert cat.entry("jetson-thor").dla_cores == 0
    assert cat.entry("jetson-agx-orin-64gb").dla_cores == 2
    assert all(e.dla_cores == 0 for e in cat.devices if not e.is_jetson)


def test_jetpack_table_matches_the_facts() -> None:
    cat = load_catalog()
    trt = {r.jetpack: r.tensorrt for r in cat.jetpack}
    assert trt["5.1"].startswith("8.5")
    assert trt["6.1"] == trt["6.2"] == "10.3"
    assert trt["7.0"] == trt["7.1"] == "10.13"
    assert trt["7.2"] == "10.16"
    jp722 = cat.jetpack_release("7.2.2")
    assert jp722 is not None and jp722.tensorrt_optional == "11.4.1"
    assert set(jp722.tensorrt_optional_devices) == {
        "jetson-agx-orin-32gb", "jetson-agx-orin-64gb", "jetson-thor"}


def test_jetpack_table_is_consistent_with_devices() -> None:
    cat = load_catalog()
    for e in cat.devices:
        for jp in e.jetpacks:
            release = cat.jetpack_release(jp)
            assert release is not None, f"{e.key}: JetPack {jp} not in the table"
            assert e.soc in release.modules, f"{e.key}: JetPack {jp} does not support {e.soc}"
    for r in cat.jetpack:
        for key in r.tensorrt_optional_devices:
            assert cat.entry(key).is_jetson
    l4ts = [r.l4t for r in cat.jetpack if r.l4t]
    assert len(l4ts) == len(set(l4ts))


@pytest.mark.parametrize(("l4t", "jetpack"), [
    ("35.3.1", "5.1.1"), ("36.4.3", "6.2"), ("36.4.0", "6.1"), ("38.2.0", "7.0"),
    ("39.2.0", "7.2"), ("36.4.7", "6.2.1"),
])
def test_jetpack_for_l4t(l4t: str, jetpack: str) -> None:
    release = load_catalog().jetpack_for_l4t(l4t)
    assert release is not None and release.jetpack == jetpack


def test_uncertain_fields_name_real_fields() -> None:
    cat = load_catalog()
    for e in cat.devices:
        assert set(e.uncertain) <= set(e.to_dict()), e.key
    for r in cat.jetpack:
        assert set(r.uncertain) <= set(r.to_dict()), r.jetpack


def test_unknown_key_lists_known_ones() -> None:
    with pytest.raises(ManifestError, match="jetson-thor"):
        load_catalog().entry("no-such-device")


def test_bad_catalog_is_rejected() -> None:
    data = json.loads(resources.files("medfuse.devices").joinpath("catalog.json").read_text())
    data["devices"][0]["compute_capability"] = "sm87"
    with pytest.raises(ManifestError, match="compute_capability"):
        parse_catalog(data)
