"""``infer`` validates each feed layout once: same results as a bare IOBinding call, and every
bad feed still refused after a good layout was remembered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from helpers.onnx_bundles import fusion_model, random_feeds
from medfuse.errors import BackendError
from medfuse.runtime.backends.onnxruntime import OnnxRuntimeBackend


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fusion_model(tmp_path_factory.mktemp("layouts") / "fusion.onnx")


def _bare_iobinding(model: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The hand-written call: one IOBinding over arrays bound once, run_with_iobinding."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    first = sess.run(None, feeds)
    outs = {o.name: np.empty_like(r) for o, r in zip(sess.get_outputs(), first, strict=True)}
    binding = sess.io_binding()
    for k, v in feeds.items():
        binding.bind_input(k, "cpu", 0, v.dtype.type, v.shape, v.ctypes.data)
    for k, v in outs.items():
        binding.bind_output(k, "cpu", 0, v.dtype.type, v.shape, v.ctypes.data)
    sess.run_with_iobinding(binding)
    return outs


def test_repeated_infer_equals_bare_iobinding(model: Path) -> None:
    feeds = random_feeds(1)
    want = _bare_iobinding(model, feeds)
    with OnnxRuntimeBackend(model, threads=1) as b:
        for _ in range(3):  # first call validates, later ones take the remembered layout
            got = b.infer(feeds)
            for name, arr in want.items():
                np.testing.assert_array_equal(got[name], arr)
        assert len(b._layouts) == 1
        other = random_feeds(1)  # new values, same layout: new results, no new layout
        np.testing.assert_array_equal(
            b.infer(other)["diagnosis"], _bare_iobinding(model, other)["diagnosis"]
        )
        assert len(b._layouts) == 1


def test_a_remembered_layout_still_checks_values_and_other_layouts(model: Path) -> None:
    with OnnxRuntimeBackend(model, threads=1, max_batch=4) as b:
        feeds = random_feeds(2)
        b.infer(feeds)
        feeds["ct"][0, 0, 0, 0] = np.nan  # same layout, bad value
        with pytest.raises(BackendError, match=r"'ct': 1 non-finite value\(s\) \(1 NaN"):
            b.infer(feeds)
        bad = dict(random_feeds(2))
        bad["ct"] = bad["ct"].astype(np.float64)
        with pytest.raises(BackendError, match="'ct': dtype float64, expected float32"):
            b.infer(bad)
        with pytest.raises(BackendError, match="batch size 5 is not allowed"):
            b.infer(random_feeds(5))
        listed: dict[str, object] = dict(random_feeds(2))
        listed["ct"] = listed["ct"].tolist()  # type: ignore[attr-defined]
        with pytest.raises(BackendError, match="'ct': expected a numpy array, got list"):
            b.infer(listed)  # type: ignore[arg-type]
        fake: dict[str, object] = dict(random_feeds(2))
        fake["ct"] = np.ma.masked_array(random_feeds(2)["ct"])  # same dtype/shape, other type
        b.infer(fake)  # type: ignore[arg-type]
        assert len(b._layouts) == 2  # the subclass is its own layout, validated once
        with pytest.raises(BackendError, match="feeds must be a mapping"):
            b.infer([1, 2])  # type: ignore[arg-type]
    assert not b._layouts  # forgotten with the model


def test_feeds_bound_in_place_follow_new_arrays_values_and_strides(model: Path) -> None:
    """infer binds the caller's arrays: new arrays, values changed in place and strided
    views all give the bare call's results."""
    with OnnxRuntimeBackend(model, threads=1, max_batch=4) as b:
        a, c = random_feeds(2), random_feeds(2)
        for feeds in (a, c, a):  # addresses change between calls: rebound each time
            np.testing.assert_array_equal(
                b.infer(feeds)["diagnosis"], _bare_iobinding(model, feeds)["diagnosis"]
            )
        a["ct"] *= -1.0  # same array, new values
        np.testing.assert_array_equal(
            b.infer(a)["diagnosis"], _bare_iobinding(model, a)["diagnosis"]
        )
        wide = np.repeat(a["ct"], 2, axis=-1)
        strided = dict(a)
        strided["ct"] = wide[..., ::2]  # not contiguous: copied into the bound buffer
        assert not strided["ct"].flags.c_contiguous
        np.testing.assert_array_equal(
            b.infer(strided)["diagnosis"], _bare_iobinding(model, a)["diagnosis"]
        )
        np.testing.assert_array_equal(
            b.infer(c)["diagnosis"], _bare_iobinding(model, c)["diagnosis"]
        )
