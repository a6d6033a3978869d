"""ONNX Runtime backend: results vs bare ONNX Runtime, reused output buffers, no per-call
allocation, feeds validation."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from helpers.onnx_bundles import fusion_model, fusion_reference, random_feeds
from medfuse.errors import BackendError, UsageError
from medfuse.runtime.backends.onnxruntime import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fusion_model(tmp_path_factory.mktemp("ort") / "fusion.onnx")


@pytest.fixture
def backend(model: Path) -> OnnxRuntimeBackend:
    with OnnxRuntimeBackend(model, threads=1, max_batch=4) as b:
        yield b  # type: ignore[misc]


def _relu_model(path: Path, shape: tuple[int, ...]) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", *shape])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 10
    onnx.save(m, str(path))
    return path


def test_infer_matches_bare_onnxruntime_and_numpy(backend: OnnxRuntimeBackend, model: Path) -> None:
    feeds = random_feeds(3)
    out = {k: v.copy() for k, v in backend.infer(feeds).items()}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    bare = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in bare.get_outputs()]
    for name, arr in zip(names, bare.run(None, feeds), strict=True):
        np.testing.assert_array_equal(out[name], arr)
    ref = fusion_reference(feeds)
    for name in names:
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-5, atol=1e-5)


def test_outputs_are_reused_buffers(backend: OnnxRuntimeBackend) -> None:
    first = backend.infer(random_feeds(2, seed=1))
    kept = {k: v.copy() for k, v in first.items()}
    second = backend.infer(random_feeds(2, seed=2))
    for name in first:
        assert second[name] is first[name]  # the same bound array, overwritten in place
    assert not np.array_equal(first["diagnosis"], kept["diagnosis"])
    np.testing.assert_allclose(
        kept["diagnosis"], fusion_reference(random_feeds(2, seed=1))["diagnosis"], atol=1e-5
    )


def test_batch_sizes_get_their_own_buffers(backend: OnnxRuntimeBackend) -> None:
    two = backend.infer(random_feeds(2))["diagnosis"]
    three = backend.infer(random_feeds(3))["diagnosis"]
    assert two.shape == (2, 3) and three.shape == (3, 3)
    assert not np.shares_memory(two, three)


def test_bound_input_buffers_run_without_copy(backend: OnnxRuntimeBackend) -> None:
    feeds = random_feeds(2, seed=5)
    buffers = backend.buffers(2)
    for name, arr in feeds.items():
        buffers.inputs[name][...] = arr
    out = backend.infer(buffers.inputs)
    np.testing.assert_allclose(out["diagnosis"], fusion_reference(feeds)["diagnosis"], atol=1e-5)
    out2 = backend.execute(buffers)
    assert out2["diagnosis"] is buffers.outputs["diagnosis"]


def _traced(fn: object, calls: int) -> tuple[int, int]:
    """(retained bytes, peak bytes) traced over ``calls`` calls of ``fn``."""
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(calls):
            fn()  # type: ignore[operator]
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current - base, peak - base


def test_steady_state_infer_allocates_no_tensor_buffers(tmp_path: Path) -> None:
    """After warm-up, 50 calls allocate nothing: not even transiently (the peak stays put).

    tracemalloc sees Python objects and numpy data; ONNX Runtime's own C++ arena is not
    traced (it reuses its memory across runs on its own).
    """
    shape = (3, 64, 64)  # 48 KiB per sample
    model = _relu_model(tmp_path / "relu.onnx", shape)
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    with OnnxRuntimeBackend(model, threads=1) as b:
        # Warm-up also fills the interpreter's free lists (dicts, tuples), which tracemalloc
        # would otherwise count as growth during the first few hundred calls.
        for _ in range(500):
            b.infer({"x": x})
        retained, peak = _traced(lambda: b.infer({"x": x}), 50)
        np.testing.assert_array_equal(b.infer({"x": x})["y"], np.maximum(x, 0))
    assert peak < 4096, f"{peak} bytes allocated at once during 50 calls (a tensor is {x.nbytes})"
    assert retained < 1024, f"{retained} bytes retained after 50 calls"


def test_tracemalloc_sees_tensor_allocations() -> None:
    """The measurement above is sensitive: a call that allocates one tensor copy shows up."""
    x = np.ones((2, 3, 64, 64), np.float32)
    _, peak = _traced(lambda: np.ascontiguousarray(x).copy(), 50)
    assert peak >= x.nbytes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.pop("mr"), r"missing \['mr'\]"),
        (lambda f: f.update(extra=np.zeros((2, 1), np.float32)), r"unexpected \['extra'\]"),
        (
            lambda f: f.update(ct=f["ct"].astype(np.float64)),
            r"'ct': dtype float64, expected float32",
        ),
        (
            lambda f: f.update(ct=f["ct"][:, :1]),
            r"'ct': shape \[2, 1, 8, 8\], expected \['batch', 2, 8, 8\]",
        ),
        (lambda f: f.update(mr=f["mr"][:1]), r"'mr': batch 1 differs"),
        (lambda f: f.update(ct=f["ct"].tolist()), r"'ct': expected a numpy array, got list"),
    ],
)
def test_bad_feeds_are_backend_errors(
    backend: OnnxRuntimeBackend, change: object, message: str
) -> None:
    feeds: dict[str, object] = dict(random_feeds(2))
    change(feeds)  # type: ignore[operator]
    with pytest.raises(BackendError, match=message):
        backend.infer(feeds)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "what"), [(np.nan, "1 NaN, 0 infinite"), (np.inf, "0 NaN, 1 infinite")]
)
def test_non_finite_feeds_are_rejected(
    backend: OnnxRuntimeBackend, value: float, what: str
) -> None:
    feeds = random_feeds(2)
    feeds["ct"][1, 0, 3, 3] = value
    with pytest.raises(BackendError, match=rf"'ct': 1 non-finite value\(s\) \({what}\)"):
        backend.infer(feeds)


def test_batch_above_max_is_rejected(backend: OnnxRuntimeBackend) -> None:
    with pytest.raises(
        BackendError, match=r"batch size 5 is not allowed; this model accepts 1\.\.4"
    ):
        backend.infer(random_feeds(5))


def test_fixed_batch_model_accepts_only_its_batch(tmp_path: Path) -> None:
    model = fusion_model(tmp_path / "b1.onnx", batch=1)
    with OnnxRuntimeBackend(model) as b:
        assert b.max_batch == b.min_batch == 1
        assert b.infer(random_feeds(1))["diagnosis"].shape == (1, 3)
        with pytest.raises(BackendError, match="batch size 2 is not allowed; this model accepts 1"):
            b.infer(random_feeds(2))


def test_feeds_not_a_mapping(backend: OnnxRuntimeBackend) -> None:
    with pytest.raises(BackendError, match="feeds must be a mapping"):
        backend.infer([np.zeros(1)])  # type: ignore[arg-type]


def test_inactive_backend_refuses(model: Path) -> None:
    b = OnnxRuntimeBackend(model)
    with pytest.raises(BackendError, match="not active"):
        b.infer(random_feeds(1))
    b.activate()
    with pytest.raises(BackendError, match="already active"):
        b.activate()
    b.deactivate()
    b.deactivate()  # idempotent
    with pytest.raises(BackendError, match="not active"):
        b.infer(random_feeds(1))


def test_execute_needs_own_buffers(backend: OnnxRuntimeBackend, model: Path) -> None:
    with OnnxRuntimeBackend(model) as other:
        foreign = other.buffers(1)
        with pytest.raises(BackendError, match="buffer set allocated by this backend"):
            backend.execute(foreign)


def test_session_options_are_checked(model: Path) -> None:
    with pytest.raises(UsageError, match="graph_optimization 'fast'"):
        OnnxRuntimeBackend(model, graph_optimization="fast")
    with pytest.raises(UsageError, match=r"threads 0 is outside the allowed range 1\.\."):
        OnnxRuntimeBackend(model, threads=0)
    with OnnxRuntimeBackend(model, threads=1, graph_optimization="disabled") as b:
        out = b.infer(random_feeds(1))
        np.testing.assert_allclose(
            out["diagnosis"], fusion_reference(random_feeds(1))["diagnosis"], atol=1e-5
        )


def test_unloadable_model_is_backend_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match=r"could not load the model bad\.onnx"):
        OnnxRuntimeBackend(bad).activate()


def test_symbolic_sample_dims_need_shapes(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 10
    onnx.save(m, str(tmp_path / "dyn.onnx"))
    with pytest.raises(BackendError, match="symbolic dimensions"):
        OnnxRuntimeBackend(tmp_path / "dyn.onnx").activate()
    with OnnxRuntimeBackend(tmp_path / "dyn.onnx", sample_shapes={"x": (3, 5, 6)}) as b:
        x = -np.ones((2, 3, 5, 6), np.float32)
        out = b.infer({"x": x})
        assert out["y"].shape == (2, 3, 5, 6) and not out["y"].any()


@pytest.mark.gpu
def test_cuda_provider_matches_cpu(model: Path) -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    feeds = random_feeds(2)
    with OnnxRuntimeBackend(model, device="cuda:0") as b:
        assert "CUDAExecutionProvider" in b.providers
        out = b.infer(feeds)
        np.testing.assert_allclose(
            out["diagnosis"], fusion_reference(feeds)["diagnosis"], atol=1e-3
        )
