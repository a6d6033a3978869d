"""Backend / device / precision selection: explicit, explained, and clean refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import pytest

from helpers.onnx_bundles import fusion_bundle
from medfuse.bundle import Bundle, VariantSource, update_bundle
from medfuse.errors import BackendError, MissingDependencyError, UsageError
from medfuse.runtime.backends.select import (
    available_backends,
    choose_backend,
    cpu_slower_than_fp32,
    create_backend,
    parse_device,
    precision_preference,
)

HAS_CUDA_EP = "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    return fusion_bundle(tmp_path_factory.mktemp("sel"), precisions=("fp32", "fp16", "int8-cpu"))


def test_tensorrt_request_names_what_to_install(bundle: Bundle) -> None:
    with pytest.raises(MissingDependencyError) as info:
        choose_backend(bundle, backend="tensorrt")
    msg = str(info.value)
    assert "pip install 'medfuse[tensorrt]'" in msg and "JetPack" in msg


def test_tensorrt_on_cpu_device_is_refused(bundle: Bundle) -> None:
    with pytest.raises((MissingDependencyError, BackendError)):
        choose_backend(bundle, backend="tensorrt", device="cpu")
    assert available_backends("cpu")["tensorrt"] is not None


def test_cpu_prefers_int8_cpu_then_fp32(bundle: Bundle, tmp_path: Path) -> None:
    choice = choose_backend(bundle, device="cpu")
    assert (choice.backend, choice.device, choice.precision) == ("onnxruntime", "cpu", "int8-cpu")
    assert choice.model_path.name == "model.int8-cpu.onnx"
    no_int8 = fusion_bundle(tmp_path, precisions=("fp16", "fp32"))
    assert choose_backend(no_int8, device="cpu").precision == "fp32"


def test_cuda_order_prefers_fp16() -> None:
    assert precision_preference("cuda:0")[:2] == ("fp16", "fp32")
    assert precision_preference("cpu")[:2] == ("int8-cpu", "fp32")


def test_explicit_precision_is_honoured(bundle: Bundle) -> None:
    choice = choose_backend(bundle, precision="fp16", device="cpu")
    assert choice.precision == "fp16" and "as requested" in choice.reason


def test_unknown_precision_lists_what_exists(bundle: Bundle) -> None:
    with pytest.raises(
        BackendError, match=r"precision 'int8' is not in this bundle; it has fp32, fp16, int8-cpu"
    ):
        choose_backend(bundle, precision="int8", device="cpu")


def test_choice_is_logged_with_reason(bundle: Bundle, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="medfuse.runtime.backends.select"):
        choice = choose_backend(bundle)
    assert "not TensorRT" in choice.reason and "int8-cpu" in choice.reason
    assert any(
        "backend onnxruntime on cpu, variant int8-cpu" in r.getMessage() for r in caplog.records
    )


@pytest.mark.skipif(HAS_CUDA_EP, reason="onnxruntime-gpu is installed here")
def test_cuda_without_onnxruntime_gpu_is_refused(bundle: Bundle) -> None:
    with pytest.raises(BackendError, match="install onnxruntime-gpu"):
        choose_backend(bundle, device="cuda")
    assert choose_backend(bundle).device == "cpu"


def test_bad_names_are_usage_errors(bundle: Bundle) -> None:
    with pytest.raises(UsageError, match="backend 'openvino' is not one of"):
        choose_backend(bundle, backend="openvino")
    with pytest.raises(UsageError, match="device 'tpu' is not one of"):
        choose_backend(bundle, device="tpu")
    assert parse_device("CUDA") == "cuda:0" and parse_device("cuda:1") == "cuda:1"


def test_create_backend_runs_the_choice(bundle: Bundle) -> None:
    choice = choose_backend(bundle, precision="fp32", device="cpu")
    with create_backend(choice, threads=1) as backend:
        assert [t.name for t in backend.input_specs] == ["ct", "mr", "presence"]
        assert backend.providers == ("CPUExecutionProvider",)


def test_cpu_passes_over_a_variant_measured_slower_than_fp32(tmp_path: Path) -> None:
    b = fusion_bundle(tmp_path, precisions=("fp32", "int8-cpu"))
    slow = {"gate": "passed", "cpu_timing": {"fp32_ms": 27.0, "ms": 48.5, "speedup_vs_fp32": 0.557}}
    src = VariantSource(b.variant_file("int8-cpu"), accuracy=slow)
    b = update_bundle(b, add_variants={"int8-cpu": src})
    assert cpu_slower_than_fp32(b) == {"int8-cpu": pytest.approx(0.557)}
    choice = choose_backend(b, device="cpu")
    assert choice.precision == "fp32"
    assert "int8-cpu skipped (measured 0.56x fp32 speed" in choice.reason
    assert choose_backend(b, device="cpu", precision="int8-cpu").precision == "int8-cpu"
    fast = {"gate": "passed", "cpu_timing": {"fp32_ms": 198.0, "ms": 71.0, "speedup_vs_fp32": 2.79}}
    b = update_bundle(
        b, add_variants={"int8-cpu": VariantSource(b.variant_file("int8-cpu"), accuracy=fast)}
    )
    assert cpu_slower_than_fp32(b) == {}
    assert choose_backend(b, device="cpu").precision == "int8-cpu"
