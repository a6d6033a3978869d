"""The TensorRT rows of the session-overhead suite on real hardware: bare TensorRT, trtexec on the
same plan, and the suite end to end (skipped without a GPU and TensorRT).

None of these has run yet: the machines used so far have no GPU. They are the checks to run on
a GPU server and on a Jetson (``pytest tests/benchmarks/test_trtexec_gpu.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.onnx_bundles import TINY_CT_SHAPE, make_bundle, reference_outputs
from medfuse.benchmarks.bare_tensorrt import BareTensorRT
from medfuse.benchmarks.trtexec import find_trtexec, run_trtexec, trtexec_command
from medfuse.bundle import open_bundle
from medfuse.devices.engines import BuiltEngine, build_engine
from medfuse.devices.plan import BuildRequest
from medfuse.runtime.session import Session

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "session_overhead.py"
SHAPES = {"ct": (1, *TINY_CT_SHAPE), "presence": (1, 1)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltEngine:
    bundle = make_bundle(tmp_path_factory.mktemp("bundle"))
    return build_engine(bundle, BuildRequest("fp32", batch_sizes=(1,)))


def _feeds(built: BuiltEngine) -> dict[str, np.ndarray]:
    with np.load(built.bundle.file("golden.npz")) as z:
        return {"ct": z["ct"][:1], "presence": z["presence"][:1]}


@pytest.mark.parametrize("mapped", [False, True])
def test_bare_tensorrt_matches_numpy_and_the_session(built: BuiltEngine, mapped: bool) -> None:
    feeds = _feeds(built)
    plan = built.bundle.engine_file(built.record.key)
    with BareTensorRT(plan, batch=1, mapped=mapped) as bare:
        assert bare.dynamic_input_shapes == SHAPES
        for k, v in feeds.items():
            bare.inputs[k][...] = v
        bare.run()
        got = {k: v.copy() for k, v in bare.outputs.items()}
    diag, sev = reference_outputs(feeds["ct"], feeds["presence"])
    np.testing.assert_allclose(got["diagnosis"], diag, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["severity"], sev, rtol=1e-4, atol=1e-5)
    with Session(built.bundle, backend="tensorrt", precision="fp32", device="cuda:0") as session:
        out = session.infer(feeds)
        for k, v in got.items():
            np.testing.assert_allclose(out[k], v, rtol=1e-5, atol=1e-6)


def test_trtexec_times_the_same_plan(built: BuiltEngine) -> None:
    import tensorrt

    exe = find_trtexec()
    if exe is None:
        pytest.skip("trtexec is neither on PATH nor in /usr/src/tensorrt/bin")
    plan = built.bundle.engine_file(built.record.key)
    argv = trtexec_command(exe, plan, shapes=SHAPES, iterations=50, warmup_ms=50)
    summary = run_trtexec(argv).summary
    assert summary.passed is True
    assert summary.queries is not None and summary.queries >= 50
    assert summary.tensorrt_version is not None
    assert str(tensorrt.__version__).startswith(summary.tensorrt_version)
    assert 0 < summary.gpu_compute.median_ms <= summary.latency.max_ms


def test_suite_builds_an_engine_and_writes_the_tensorrt_rows(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path)
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *("--bundle", str(bundle.path), "--build", "--iterations", "20", "--out", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = out.glob("session_overhead-*.json")
    trt = json.loads(path.read_text())["tensorrt"]
    assert "stats" in trt, trt
    assert trt["engine"]["built_for_this_run"] is True and trt["engine"]["variant"] == "fp32"
    assert set(trt["stats"]) == {
        "trt_bare",
        "session_infer",
        "session_execute",
        "session_execute_no_graph",
    }
    assert max(trt["max_abs_diff_vs_bare"].values()) < 1e-4
    assert trt["session_cuda_graph_captured"] is True
    if find_trtexec() is None:
        assert "skipped" in trt["trtexec"]
    else:
        for label in ("trtexec", "trtexec_cuda_graph"):
            assert trt["trtexec"][label]["summary"]["passed"] is True, trt["trtexec"][label]
    assert open_bundle(bundle.path).manifest.engines == {}  # built into a temporary copy
    assert str(tmp_path) not in path.read_text()
