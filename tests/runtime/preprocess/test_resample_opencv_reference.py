"""resample_volume_into gives the values of a plain per-slice OpenCV resize (the reference a
user would write), and those of the module's axis weights computed independently in numpy."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from medfuse.runtime.preprocess import axis_weights, resample_volume_into

CASES = [
    ((42, 160, 160), (32, 64, 64)),  # synthetic CT: depth linear, in-plane area (2.5×)
    ((32, 112, 144), (24, 64, 64)),  # synthetic MR: depth linear, one in-plane axis > 2×
    ((128, 96, 96), (32, 32, 32)),  # area on every axis (4×, 3×)
    ((10, 50, 50), (32, 64, 64)),  # upsampling on every axis
    ((32, 64, 64), (16, 64, 64)),  # depth only, exactly 2×
    ((24, 128, 128), (24, 64, 64)),  # in-plane only
    ((5, 7, 9), (5, 7, 9)),  # identity
    ((1, 20, 20), (4, 10, 10)),  # a single slice
]


def opencv_reference(vol: NDArray[np.float32], size: tuple[int, int, int]) -> NDArray[np.float32]:
    """Per slice cv2.resize in-plane, then cv2.resize along depth; flags by the module's rule."""
    d, h, w = size
    d0, h0, w0 = vol.shape
    grows = h > h0 or w > w0
    flag = cv2.INTER_AREA if (h0 > 2 * h or w0 > 2 * w) and not grows else cv2.INTER_LINEAR
    planes = np.stack([cv2.resize(s, (w, h), interpolation=flag) for s in vol])
    depth_flag = cv2.INTER_AREA if d0 > 2 * d else cv2.INTER_LINEAR
    flat = cv2.resize(planes.reshape(d0, h * w), (h * w, d), interpolation=depth_flag)
    return flat.reshape(d, h, w)


def _matrix(n0: int, n: int) -> NDArray[np.float64]:
    m = np.zeros((n, n0))
    for k, row in enumerate(axis_weights(n0, n)):
        for j, wt in row:
            m[k, j] = wt
    return m


@pytest.mark.parametrize(("src", "dst"), CASES)
def test_values_equal_the_plain_opencv_reference(
    src: tuple[int, int, int], dst: tuple[int, int, int]
) -> None:
    vol = np.random.default_rng(sum(src)).normal(size=src).astype(np.float32) * 400.0
    out = np.full(dst, np.nan, dtype=np.float32)
    resample_volume_into(vol, dst, out)
    ref = opencv_reference(vol, dst)
    assert float(np.max(np.abs(out - ref))) <= 1e-6


@pytest.mark.parametrize(
    ("src", "dst"),
    [c for c in CASES if c[0][1:] != (112, 144)],  # one in-plane flag for both axes there
)
def test_values_follow_the_axis_weights(
    src: tuple[int, int, int], dst: tuple[int, int, int]
) -> None:
    vol = np.random.default_rng(1).normal(size=src).astype(np.float32)
    out = np.empty(dst, dtype=np.float32)
    resample_volume_into(vol, dst, out)
    want = np.tensordot(_matrix(src[0], dst[0]), vol.astype(np.float64), axes=1)
    want = np.einsum("dhw,Hh->dHw", want, _matrix(src[1], dst[1]))
    want = np.einsum("dhw,Ww->dhW", want, _matrix(src[2], dst[2]))
    np.testing.assert_allclose(out, want, atol=1e-4)


def test_threads_resample_at_once_without_sharing_scratch() -> None:
    vols = [
        np.random.default_rng(i).normal(size=(42, 160, 160)).astype(np.float32) for i in range(4)
    ]
    outs = [np.empty((32, 64, 64), np.float32) for _ in vols]

    def work(i: int) -> None:
        for _ in range(5):
            resample_volume_into(vols[i], (32, 64, 64), outs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for vol, out in zip(vols, outs, strict=True):
        np.testing.assert_array_equal(out, opencv_reference(vol, (32, 64, 64)))
