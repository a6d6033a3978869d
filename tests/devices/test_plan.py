"""Build decisions for TensorRT 8.6 / 10.x / 11.x feature sets (plain code, no TensorRT).

The fake modules below are the feature probe's *input*: namespaces shaped like each release's
Python API (enum members per tensorrt-facts.md §1.1 and the 10.13 stubs), not mocks of behaviour.
"""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pytest

from medfuse.bundle import ModelSpec
from medfuse.devices.catalog import load_catalog
from medfuse.devices.plan import (
    BuildRequest,
    TrtFeatures,
    features_from_module,
    parse_batch_sizes,
    plan_build,
)
from medfuse.errors import EngineBuildError, UsageError

_COMMON_BUILDER_FLAGS = ("DEBUG", "GPU_FALLBACK", "REFIT", "TF32", "DIRECT_IO")


def fake_trt(version: str, *, builder_flags: tuple[str, ...], network_flags: tuple[str, ...],
             opt_level: bool = True, progress: bool = True) -> Any:
    config = NS(set_memory_pool_limit=object(), create_timing_cache=object())
    if opt_level:
        config.builder_optimization_level = 3
    mod = NS(
        __version__=version,
        BuilderFlag=NS(**{f: object() for f in _COMMON_BUILDER_FLAGS + builder_flags}),
        NetworkDefinitionCreationFlag=NS(**{f: object() for f in network_flags}),
        MemoryPoolType=NS(WORKSPACE=0),
        IBuilderConfig=config,
        Builder=NS(build_serialized_network=object()),
        ICudaEngine=NS(num_io_tensors=0),
        IExecutionContext=NS(execute_async_v3=object()),
        DeviceType=NS(GPU=0, DLA=1),
        OnnxParserFlag=NS(NATIVE_INSTANCENORM=0),
    )
    if progress:
        mod.IProgressMonitor = object
    return mod


TRT_11 = fake_trt("11.4.1.5", builder_flags=("VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME"),
                  network_flags=("STRONGLY_TYPED",))
TRT_10 = fake_trt("10.3.0.30", builder_flags=("FP16", "INT8", "VERSION_COMPATIBLE",
                                              "EXCLUDE_LEAN_RUNTIME"),
                  network_flags=("EXPLICIT_BATCH", "STRONGLY_TYPED"))
TRT_86 = fake_trt("8.6.2.3", builder_flags=("FP16", "INT8", "VERSION_COMPATIBLE",
                                            "EXCLUDE_LEAN_RUNTIME"),
                  network_flags=("EXPLICIT_BATCH",), progress=False)
TRT_85 = fake_trt("8.5.2.2", builder_flags=("FP16", "INT8"), network_flags=("EXPLICIT_BATCH",),
                  opt_level=False, progress=False)

AGX = load_catalog().entry("jetson-agx-orin-64gb")
NANO = load_catalog().entry("jetson-orin-nano-8gb")
H100 = load_catalog().entry("h100")


def plan(features: TrtFeatures, request: BuildRequest, spec: ModelSpec, device: Any = AGX) -> Any:
    cc = device.compute_capability if device is not None else "8.6"
    return plan_build(features, request, device, spec, gpu_name="gpu", compute_capability=cc)


def test_feature_probe_tells_releases_apart() -> None:
    f11, f10, f86 = (features_from_module(m) for m in (TRT_11, TRT_10, TRT_86))
    assert (f11.strongly_typed, f11.weak_typing, f11.explicit_batch_flag) == (True, False, False)
    assert (f10.strongly_typed, f10.weak_typing, f10.explicit_batch_flag) == (True, True, True)
    assert (f86.strongly_typed, f86.weak_typing, f86.progress_monitor) == (False, True, False)
    assert f10.version == "10.3.0.30"


def test_fake_10x_mirrors_the_stubs() -> None:
    """The installed tensorrt-stubs (10.13 API) declare the members the fake 10.x module has."""
    import importlib.util
    import re
    from pathlib import Path

    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tensorrt-stubs not installed")
    text = (Path(next(iter(spec.submodule_search_locations))) / "tensorrt.pyi").read_text()

    def members(cls: str) -> set[str]:
        body = text.split(f"\nclass {cls}:", 1)[1].split("\nclass ", 1)[0]
        return set(re.findall(r"^    ([A-Z][A-Z0-9_]+): typing.ClassVar", body, flags=re.M))

    assert set(vars(TRT_10.BuilderFlag)) <= members("BuilderFlag")
    assert set(vars(TRT_10.NetworkDefinitionCreationFlag)) <= members("NetworkDefinitionCreationFlag")
    f = features_from_module(TRT_10)
    assert f.dla and f.version_compatible and f.memory_pools and f.named_tensors


@pytest.mark.parametrize("module", [TRT_11, TRT_10])
@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8"])
def test_gpu_builds_are_strongly_typed_without_precision_flags(
        module: Any, variant: str, tiny_spec: ModelSpec) -> None:
    p = plan(features_from_module(module), BuildRequest(variant), tiny_spec)
    assert p.strongly_typed and p.network_flags == ("STRONGLY_TYPED",)
    assert not {"FP16", "INT8"} & set(p.builder_flags)


@pytest.mark.parametrize(("variant", "flags"), [("fp32", ()), ("fp16", ("FP16",)),
                                                ("int8", ("INT8", "FP16"))])
def test_trt86_falls_back_to_weak_typing(variant: str, flags: tuple[str, ...],
                                         tiny_spec: ModelSpec) -> None:
    p = plan(features_from_module(TRT_86), BuildRequest(variant), tiny_spec)
    assert not p.strongly_typed
    assert p.network_flags == ("EXPLICIT_BATCH",)
    assert p.builder_flags == flags
    assert not p.use_progress_monitor


def test_trt85_has_no_optimisation_level(tiny_spec: ModelSpec) -> None:
    p = plan(features_from_module(TRT_85), BuildRequest("fp16", optimization_level=5), tiny_spec)
    assert p.optimization_level is None
    assert any("--opt-level ignored" in n for n in p.notes)


def test_too_old_tensorrt_is_refused(tiny_spec: ModelSpec) -> None:
    old = fake_trt("8.2.1", builder_flags=("FP16",), network_flags=("EXPLICIT_BATCH",))
    del old.ICudaEngine.num_io_tensors
    with pytest.raises(EngineBuildError, match=r"TensorRT 8\.5 or newer"):
        plan(features_from_module(old), BuildRequest("fp16"), tiny_spec)


def test_dla_on_trt10_uses_weak_typing_and_fixed_profiles(tiny_spec: ModelSpec) -> None:
    req = BuildRequest("int8", batch_sizes=(1, 4), dla_core=1)
    p = plan(features_from_module(TRT_10), req, tiny_spec)
    assert not p.strongly_typed and p.network_flags == ()
    assert p.builder_flags == ("INT8", "FP16", "GPU_FALLBACK")
    assert [(q.min_batch, q.max_batch) for q in p.profiles] == [(1, 1), (4, 4)]
    assert p.dla_core == 1


def test_dla_on_trt11_is_strongly_typed(tiny_spec: ModelSpec) -> None:
    p = plan(features_from_module(TRT_11), BuildRequest("fp16", dla_core=0), tiny_spec)
    assert p.strongly_typed and p.builder_flags == ("GPU_FALLBACK",)


@pytest.mark.parametrize(("device", "request_", "match"), [
    (NANO, BuildRequest("fp16", dla_core=0), "has no DLA"),
    (AGX, BuildRequest("fp16", dla_core=2), "DLA cores 0..1"),
    (AGX, BuildRequest("fp32", dla_core=0), "fp16 or int8"),
    (AGX, BuildRequest("fp16", dla_core=0, version_compatible=True), "cannot be combined"),
    (AGX, BuildRequest("fp16", optimization_level=7), "0..5"),
    (H100, BuildRequest("fp16", workspace_mib=1), "too small"),
])
def test_impossible_requests(device: Any, request_: BuildRequest, match: str,
                             tiny_spec: ModelSpec) -> None:
    with pytest.raises(UsageError, match=match):
        plan(features_from_module(TRT_10), request_, tiny_spec, device)


def test_device_defaults_apply(tiny_spec: ModelSpec) -> None:
    p = plan(features_from_module(TRT_10), BuildRequest("fp16"), tiny_spec, NANO)
    assert p.workspace_bytes == NANO.build_defaults.workspace_mib * 2**20
    assert p.batch_sizes == NANO.build_defaults.batch_sizes
    assert p.optimization_level == NANO.build_defaults.builder_optimization_level
    q = plan(features_from_module(TRT_10), BuildRequest("fp16", workspace_mib=256,
                                                        optimization_level=1,
                                                        batch_sizes=(2, 1)), tiny_spec, NANO)
    assert (q.workspace_bytes, q.optimization_level, q.batch_sizes) == (256 * 2**20, 1, (1, 2))


def test_unknown_gpu_gets_generic_defaults(tiny_spec: ModelSpec) -> None:
    p = plan(features_from_module(TRT_11), BuildRequest("fp16"), tiny_spec, None)
    assert p.workspace_bytes == 4096 * 2**20 and p.timing_cache_key.startswith("gpu-sm86-trt11")


def test_version_compatible_flags(tiny_spec: ModelSpec) -> None:
    req = BuildRequest("fp16", version_compatible=True, exclude_lean_runtime=True)
    p = plan(features_from_module(TRT_11), req, tiny_spec, H100)
    assert p.builder_flags == ("VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME")
    assert p.parser_flags == ("NATIVE_INSTANCENORM",) and p.version_compatible
    with pytest.raises(EngineBuildError, match="VERSION_COMPATIBLE"):
        plan(features_from_module(TRT_85), BuildRequest("fp16", version_compatible=True),
             tiny_spec, H100)


def test_timing_cache_key_per_device_and_version(tiny_spec: ModelSpec) -> None:
    p10 = plan(features_from_module(TRT_10), BuildRequest("fp16"), tiny_spec)
    p11 = plan(features_from_module(TRT_11), BuildRequest("int8"), tiny_spec)
    assert p10.timing_cache_file == "timing-caches/jetson-agx-orin-64gb-sm87-trt10.3.0.30.cache"
    assert p10.timing_cache_key != p11.timing_cache_key


def test_parse_batch_sizes() -> None:
    assert parse_batch_sizes("1, 4,8") == (1, 4, 8)
    with pytest.raises(UsageError, match="'x'"):
        parse_batch_sizes("1,x")
