"""Engine cache keys are stable, file-name safe, and change with every component."""

from __future__ import annotations

import dataclasses
import re

import pytest

from medfuse.bundle import ModelSpec
from medfuse.bundle.manifest import check_engine_key
from medfuse.devices.keys import EngineCacheKey, compute_profiles, device_key, profiles_to_dict
from medfuse.errors import UsageError


@pytest.fixture(autouse=True)
def _spec(tiny_spec: ModelSpec) -> None:
    global SPEC
    SPEC = tiny_spec


SPEC: ModelSpec


def base_key() -> EngineCacheKey:
    return EngineCacheKey(
        variant="fp16",
        variant_sha256="a" * 64,
        tensorrt_version="10.3.0.30",
        gpu_name="Jetson AGX Orin 64GB",
        compute_capability="8.7",
        dla_core=None,
        profile=profiles_to_dict(compute_profiles(SPEC, [1, 4, 8]), [1, 4, 8]),
        builder_optimization_level=3,
        version_compatible=False,
    )


def test_key_text_is_stable_and_valid() -> None:
    key = base_key()
    # Pinned: the string form must not change between medfuse releases for the same inputs.
    assert key.text == base_key().text
    assert re.fullmatch(r"fp16-sm87-trt10\.3\.0\.30-gpu-b8-[0-9a-f]{12}", key.text)
    assert check_engine_key(key.text, "test") == key.text
    assert key.file == f"engines/{key.text}.plan"


@pytest.mark.parametrize(("field", "value"), [
    ("variant", "int8"), ("variant_sha256", "b" * 64), ("tensorrt_version", "10.3.0.31"),
    ("gpu_name", "Jetson AGX Orin 32GB"), ("compute_capability", "8.6"), ("dla_core", 0),
    ("profile", {"batch_sizes": [1, 4, 16]}), ("builder_optimization_level", 5),
    ("version_compatible", True),
])
def test_every_component_changes_the_key(field: str, value: object) -> None:
    assert dataclasses.replace(base_key(), **{field: value}).text != base_key().text


def test_device_key() -> None:
    assert device_key("NVIDIA A100-SXM4-80GB", "8.0", "10.13.0.35") == \
        "nvidia-a100-sxm4-80gb-sm80-trt10.13.0.35"


def test_profile_min_opt_max() -> None:
    (p,) = compute_profiles(SPEC, [8, 1, 4])
    ct = p.inputs[0]
    assert ct.name == "ct"
    assert (ct.min[0], ct.opt[0], ct.max[0]) == (1, 4, 8)
    assert ct.min[1:] == (2, 4, 8, 8)
    assert p.inputs[1].max == (8, 1)
    assert p.accepts(3) and not p.accepts(9)


def test_even_count_opt_is_upper_middle() -> None:
    (p,) = compute_profiles(SPEC, [1, 2, 4, 8])
    assert p.opt_batch == 4


def test_fixed_profiles_for_dla() -> None:
    profiles = compute_profiles(SPEC, [4, 1], fixed_shapes=True)
    assert [(p.min_batch, p.opt_batch, p.max_batch) for p in profiles] == [(1, 1, 1), (4, 4, 4)]


def test_bad_batches() -> None:
    with pytest.raises(UsageError, match="positive"):
        compute_profiles(SPEC, [0, 4])
    with pytest.raises(UsageError):
        compute_profiles(SPEC, [])
