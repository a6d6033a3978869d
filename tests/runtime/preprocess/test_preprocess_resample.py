"""Resampling into caller buffers, checked against analytic expectations (not against OpenCV)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from medfuse.errors import PreprocessingError
from medfuse.runtime.preprocess import axis_weights, resample_volume_into, resize_image_into


def _coords(n0: int, n: int) -> np.ndarray:
    """Where output samples sit on the input axis, per the documented rule.

    Linear (not reduced by more than 2x): half-pixel centres, clamped to the end samples.
    Area (integer reduction by f > 2): the mean index of the f samples in the box.
    """
    k = np.arange(n, dtype=np.float64)
    if n0 > 2 * n:
        f = n0 // n
        assert f * n == n0, "test uses integer reductions for area"
        return k * f + (f - 1) / 2.0
    return np.clip((k + 0.5) * n0 / n - 0.5, 0.0, n0 - 1.0)


def _ramp(shape: tuple[int, int, int], a: float, b: float, c: float, d: float) -> np.ndarray:
    z, y, x = np.meshgrid(*(np.arange(s, dtype=np.float64) for s in shape), indexing="ij")
    return (a * z + b * y + c * x + d).astype(np.float32)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ((48, 192, 192), (32, 64, 64)),  # z linear 1.5x, in-plane area 3x
        ((6, 10, 12), (9, 20, 30)),  # upsampling everywhere (edges clamp)
        ((20, 8, 8), (5, 8, 8)),  # z area 4x, in-plane untouched
        ((4, 30, 10), (4, 10, 20)),  # rows shrink 3x but columns grow: linear in-plane
        ((10, 16, 16), (10, 16, 16)),  # identity
    ],
)
def test_linear_ramp_maps_to_expected_coordinates(
    src: tuple[int, int, int], dst: tuple[int, int, int]
) -> None:
    a, b, c, d = 1.0, 0.25, 0.0625, -3.0
    out = np.full(dst, np.nan, dtype=np.float32)
    resample_volume_into(_ramp(src, a, b, c, d), dst, out)
    zc, yc, xc = (_coords(n0, n) for n0, n in zip(src, dst, strict=True))
    expected = a * zc[:, None, None] + b * yc[None, :, None] + c * xc[None, None, :] + d
    np.testing.assert_allclose(out, expected, atol=2e-4)


def test_constant_volume_stays_constant() -> None:
    out = np.empty((7, 20, 9), dtype=np.float32)
    resample_volume_into(np.full((13, 50, 40), -1024.0, dtype=np.float32), (7, 20, 9), out)
    np.testing.assert_allclose(out, -1024.0, rtol=1e-6)


def test_bright_slice_lands_at_expected_depth_when_upsampling() -> None:
    vol = np.zeros((8, 4, 4), dtype=np.float32)
    vol[3] = 1.0
    out = np.empty((16, 4, 4), dtype=np.float32)
    resample_volume_into(vol, (16, 4, 4), out)
    src = (np.arange(16) + 0.5) * 8 / 16 - 0.5
    hat = np.clip(1.0 - np.abs(src - 3.0), 0.0, None)  # linear interpolation kernel
    np.testing.assert_allclose(out[:, 2, 2], hat, atol=1e-6)
    profile = out[:, 0, 0]
    assert float((profile * np.arange(16)).sum() / profile.sum()) == pytest.approx(6.5)


def test_bright_slice_is_box_averaged_when_reducing_more_than_2x() -> None:
    vol = np.zeros((30, 6, 6), dtype=np.float32)
    vol[14] = 3.0
    out = np.empty((10, 6, 6), dtype=np.float32)
    resample_volume_into(vol, (10, 6, 6), out)
    expected = np.zeros(10)
    expected[14 // 3] = 1.0  # 3.0 averaged over a box of 3 slices
    np.testing.assert_allclose(out[:, 1, 4], expected, atol=1e-6)


def test_axis_weights_sum_to_one() -> None:
    for n0, n in [(1, 5), (5, 1), (48, 32), (300, 64), (7, 3), (3, 7), (100, 33)]:
        rows = axis_weights(n0, n)
        assert len(rows) == n
        for row in rows:
            assert sum(w for _, w in row) == pytest.approx(1.0)
            assert all(0 <= j < n0 and w > 0 for j, w in row)


def test_writes_into_a_view_of_a_larger_buffer() -> None:
    buf = np.full((2, 3, 8, 16, 16), np.nan, dtype=np.float32)
    view = buf[1, 2]
    resample_volume_into(np.ones((5, 32, 32), dtype=np.float32), (8, 16, 16), view)
    assert np.isfinite(buf[1, 2]).all()
    np.testing.assert_allclose(buf[1, 2], 1.0, rtol=1e-6)
    assert np.isnan(buf[0]).all() and np.isnan(buf[1, :2]).all()


def test_no_output_sized_allocation() -> None:
    vol = np.random.default_rng(0).normal(size=(48, 192, 192)).astype(np.float32)
    out = np.empty((32, 64, 64), dtype=np.float32)
    resample_volume_into(vol, (32, 64, 64), out)  # warm caches (weights)
    tracemalloc.start()
    try:
        resample_volume_into(vol, (32, 64, 64), out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < out.nbytes // 8, f"peak {peak} bytes for an output of {out.nbytes}"


def test_rejects_wrong_output() -> None:
    vol = np.zeros((4, 8, 8), dtype=np.float32)
    with pytest.raises(PreprocessingError, match="shape"):
        resample_volume_into(vol, (4, 8, 8), np.empty((4, 8, 9), dtype=np.float32))
    with pytest.raises(PreprocessingError, match="float32"):
        resample_volume_into(vol, (4, 8, 8), np.empty((4, 8, 8), dtype=np.float64))
    with pytest.raises(PreprocessingError, match="contiguous"):
        resample_volume_into(vol, (4, 8, 8), np.empty((4, 8, 16), dtype=np.float32)[:, :, ::2])
    with pytest.raises(PreprocessingError, match="3-D"):
        resample_volume_into(
            np.zeros((8, 8), np.float32), (4, 8, 8), np.empty((4, 8, 8), np.float32)
        )


@pytest.mark.parametrize(
    ("src", "dst"), [((192, 160), (64, 64)), ((20, 30), (50, 45)), ((9, 9), (9, 9))]
)
def test_resize_image_ramp(src: tuple[int, int], dst: tuple[int, int]) -> None:
    y, x = np.meshgrid(*(np.arange(s, dtype=np.float64) for s in src), indexing="ij")
    img = (2.0 * y - 0.5 * x + 10.0).astype(np.float32)
    out = np.empty(dst, dtype=np.float32)
    resize_image_into(img, dst, out)
    # (192,160)->(64,64): rows 3x (area), columns 2.5x (area, non-integer): check rows only
    yc = _coords(src[0], dst[0])
    if src[1] > 2 * dst[1] and src[1] % dst[1]:
        np.testing.assert_allclose(out[:, 0] - out[:, 0].mean(), 2.0 * (yc - yc.mean()), atol=1e-3)
    else:
        xc = _coords(src[1], dst[1])
        np.testing.assert_allclose(out, 2.0 * yc[:, None] - 0.5 * xc[None, :] + 10.0, atol=1e-4)


def test_resize_image_accepts_integer_input() -> None:
    out = np.empty((2, 2), dtype=np.float32)
    resize_image_into(np.full((6, 6), 7, dtype=np.int16), (2, 2), out)
    np.testing.assert_allclose(out, 7.0)


@pytest.mark.parametrize(("n0", "n"), [(10, 3), (6, 9), (7, 5), (25, 4)])
def test_depth_follows_the_same_rule_as_in_plane(n0: int, n: int) -> None:
    vol = np.random.default_rng(n0 * n).normal(size=(n0, n0, 1)).astype(np.float32)
    out3 = np.empty((n, n, 1), dtype=np.float32)
    resample_volume_into(vol, (n, n, 1), out3)
    out2 = np.empty((n, n), dtype=np.float32)
    resize_image_into(vol[:, :, 0], (n, n), out2)
    np.testing.assert_allclose(out3[:, :, 0], out2, atol=1e-5)
