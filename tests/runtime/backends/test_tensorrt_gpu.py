"""TensorRT build + backend on real hardware (skipped without a GPU and TensorRT).

None of these has run yet: medfuse's CI machine has no GPU. They are the checks to run on a
GPU server and on a Jetson (see docs/tensorrt.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers.onnx_bundles import make_bundle
from medfuse.bundle import Bundle, open_bundle
from medfuse.devices.detect import detect_device
from medfuse.devices.engines import build_engine
from medfuse.devices.plan import BuildRequest
from medfuse.devices.preflight import preflight_engine
from medfuse.errors import IncompatibleBundleError

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return make_bundle(tmp_path)


def _golden(bundle: Bundle) -> dict[str, np.ndarray]:
    with np.load(bundle.file("golden.npz")) as z:
        return {k: z[k] for k in z.files}


def _backend(bundle: Bundle, key: str, **kw: object):  # type: ignore[no-untyped-def]
    from medfuse.runtime.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(bundle.engine_file(key), **kw)  # type: ignore[arg-type]


def test_build_run_and_match_onnxruntime(bundle: Bundle) -> None:
    from medfuse.runtime.backends.onnxruntime import OnnxRuntimeBackend

    built = build_engine(bundle, BuildRequest("fp32", batch_sizes=(1, 2)))
    golden = _golden(built.bundle)
    feeds = {"ct": golden["ct"], "presence": golden["presence"]}
    with OnnxRuntimeBackend(built.bundle.variant_file("fp32")) as ort:
        expected = {k: v.copy() for k, v in ort.infer(feeds).items()}
    with _backend(built.bundle, built.record.key) as trt:
        got = trt.infer(feeds)
        for name, ref in expected.items():
            np.testing.assert_allclose(got[name], ref, rtol=1e-4, atol=1e-5)


def test_cuda_graph_replay_equals_plain(bundle: Bundle) -> None:
    built = build_engine(bundle, BuildRequest("fp32", batch_sizes=(2,)))
    golden = _golden(built.bundle)
    feeds = {"ct": golden["ct"], "presence": golden["presence"]}
    with _backend(built.bundle, built.record.key, cuda_graphs=False) as plain:
        ref = {k: v.copy() for k, v in plain.infer(feeds).items()}
    with _backend(built.bundle, built.record.key, cuda_graphs=True,
                  collect_timings=True) as graphed:
        for _ in range(3):  # warm-up, capture, replay
            out = graphed.infer(feeds)
        for k, v in ref.items():
            np.testing.assert_array_equal(out[k], v)


def test_timing_cache_is_stored_and_reused(bundle: Bundle) -> None:
    first = build_engine(bundle, BuildRequest("fp32", batch_sizes=(1, 2)))
    assert first.plan.timing_cache_file in first.bundle.manifest.artifacts
    second = build_engine(first.bundle, BuildRequest("fp32", batch_sizes=(1, 4)))
    assert second.result.timing_cache_reused
    assert first.record.key != second.record.key
    assert {first.record.key, second.record.key} <= set(second.bundle.manifest.engines)


def test_incompatible_plan_is_refused(bundle: Bundle) -> None:
    built = build_engine(bundle, BuildRequest("fp32", batch_sizes=(1,)))
    detected = detect_device()
    with pytest.raises(IncompatibleBundleError, match="medfuse build"):
        preflight_engine(built.record, detected, "0.0.0.0")
    plan = built.bundle.path / built.record.file
    plan.write_bytes(b"garbage" + plan.read_bytes()[7:])
    with pytest.raises(IncompatibleBundleError, match="sha256"):
        preflight_engine(built.record, detected, built.record.tensorrt_version, plan_path=plan)


@pytest.mark.jetson
def test_jetson_mapped_path_makes_no_copies(bundle: Bundle) -> None:
    built = build_engine(bundle, BuildRequest("fp32", batch_sizes=(1, 2)))
    golden = _golden(open_bundle(built.bundle.path))
    with _backend(built.bundle, built.record.key, shared_memory=True) as trt:
        trt.infer({"ct": golden["ct"], "presence": golden["presence"]})
        assert trt.memcpy_count == 0
