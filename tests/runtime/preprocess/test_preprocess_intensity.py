"""Intensity recipes against the formulas of PS3.3 C.11.2.1.2 written out in the test."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from medfuse.bundle.spec import IntensityRecipe, Window
from medfuse.errors import PreprocessingError
from medfuse.runtime.preprocess import apply_intensity_into, apply_window_into


def _linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, output range [0, 1], evaluated in float64."""
    x = x.astype(np.float64)
    lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    mid = ((x - (c - 0.5)) / (w - 1) + 0.5) if w > 1 else np.zeros_like(x)
    return np.where(x <= lo, 0.0, np.where(x > hi, 1.0, mid))


def _linear_exact(x: np.ndarray, c: float, w: float) -> np.ndarray:
    x = x.astype(np.float64)
    return np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 1.0, (x - c) / w + 0.5))


def _sigmoid(x: np.ndarray, c: float, w: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-4.0 * (x.astype(np.float64) - c) / w))


def _hu() -> np.ndarray:
    rng = np.random.default_rng(7)
    x = rng.uniform(-1500, 2500, size=(6, 20, 20)).astype(np.float32)
    # exact breakpoints of the windows used below
    x.flat[:6] = [-160.5, 239.5, 40.0, -0.5, 0.0, 1.0]
    return x


@pytest.mark.parametrize(
    ("window", "reference"),
    [
        (Window(40.0, 400.0, "LINEAR"), _linear),
        (Window(-600.0, 1500.0, "LINEAR"), _linear),
        (Window(40.0, 400.0, "LINEAR_EXACT"), _linear_exact),
        (Window(40.0, 400.0, "SIGMOID"), _sigmoid),
        (Window(300.0, 1.5, "LINEAR_EXACT"), _linear_exact),
    ],
)
def test_window_matches_standard(window: Window, reference: object) -> None:
    x = _hu()
    out = np.empty_like(x)
    apply_window_into(x, window, out)
    expected = reference(x, window.center, window.width)  # type: ignore[operator]
    np.testing.assert_allclose(out, expected, atol=2e-6)


def test_linear_width_one_is_a_step_at_center_minus_half() -> None:
    x = np.array([-1.0, -0.5, -0.49, 0.0, 3.0], dtype=np.float32)
    out = np.empty_like(x)
    apply_window_into(x, Window(0.0, 1.0, "LINEAR"), out)
    np.testing.assert_array_equal(out, [0.0, 0.0, 1.0, 1.0, 1.0])


def test_sigmoid_far_from_center_is_finite_without_warnings() -> None:
    x = np.array([-1e30, -1e6, 1e6, 1e30], dtype=np.float32)
    out = np.empty_like(x)
    apply_window_into(x, Window(40.0, 1.0, "SIGMOID"), out)
    np.testing.assert_allclose(out, [0.0, 0.0, 1.0, 1.0], atol=1e-7)


def test_windows_channels_with_mean_std() -> None:
    x = _hu()
    wins = (Window(40.0, 400.0), Window(500.0, 2000.0, "SIGMOID"))
    recipe = IntensityRecipe("windows", windows=wins, mean=(0.2, 0.5), std=(0.25, 2.0))
    out = np.empty((2, *x.shape), dtype=np.float32)
    apply_intensity_into(x, recipe, out)
    np.testing.assert_allclose(out[0], (_linear(x, 40.0, 400.0) - 0.2) / 0.25, atol=1e-5)
    np.testing.assert_allclose(out[1], (_sigmoid(x, 500.0, 2000.0) - 0.5) / 2.0, atol=1e-5)


def test_values_may_be_out0_in_place() -> None:
    x = _hu()
    wins = (Window(40.0, 400.0), Window(-600.0, 1500.0), Window(500.0, 2000.0, "LINEAR_EXACT"))
    recipe = IntensityRecipe("windows", windows=wins, mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0))
    separate = np.empty((3, *x.shape), dtype=np.float32)
    apply_intensity_into(x, recipe, separate)
    shared = np.empty((3, *x.shape), dtype=np.float32)
    shared[0] = x
    apply_intensity_into(shared[0], recipe, shared)
    np.testing.assert_array_equal(shared, separate)


def test_values_overlapping_another_channel_is_rejected() -> None:
    recipe = IntensityRecipe(
        "windows", windows=(Window(0, 10), Window(0, 20)), mean=(0, 0), std=(1, 1)
    )
    buf = np.zeros((2, 4, 4), dtype=np.float32)
    with pytest.raises(PreprocessingError, match="overlap"):
        apply_intensity_into(buf[1], recipe, buf)


def test_percentile_clips_and_scales() -> None:
    x = np.arange(101, dtype=np.float32).reshape(1, 101)[::-1].copy()
    recipe = IntensityRecipe("percentile", percentiles=(10.0, 90.0), mean=(0.5,), std=(0.5,))
    out = np.empty((1, *x.shape), dtype=np.float32)
    apply_intensity_into(x, recipe, out)
    expected = (np.clip((x.astype(np.float64) - 10.0) / 80.0, 0.0, 1.0) - 0.5) / 0.5
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_percentile_of_random_values_uses_linear_percentiles() -> None:
    x = np.random.default_rng(3).gamma(2.0, 300.0, size=(5, 30, 30)).astype(np.float32)
    out = np.empty((1, *x.shape), dtype=np.float32)
    apply_intensity_into(x, IntensityRecipe("percentile", percentiles=(0.5, 99.5)), out)
    flat = np.sort(x.astype(np.float64).ravel())

    def pct(q: float) -> float:  # linear interpolation between order statistics
        pos = q / 100.0 * (flat.size - 1)
        i = int(np.floor(pos))
        return float(flat[i] + (pos - i) * (flat[min(i + 1, flat.size - 1)] - flat[i]))

    lo, hi = pct(0.5), pct(99.5)
    np.testing.assert_allclose(out[0], np.clip((x - lo) / (hi - lo), 0.0, 1.0), atol=1e-5)


def test_minmax_scales_to_unit_range() -> None:
    x = np.array([[-5.0, 0.0, 15.0]], dtype=np.float32)
    out = np.empty((1, 1, 3), dtype=np.float32)
    apply_intensity_into(x, IntensityRecipe("minmax"), out)
    np.testing.assert_allclose(out[0], [[0.0, 0.25, 1.0]])


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_constant_input_gives_zero_not_nan(method: str) -> None:
    x = np.full((3, 4, 4), 123.0, dtype=np.float32)
    out = np.full((1, 3, 4, 4), np.nan, dtype=np.float32)
    apply_intensity_into(x, IntensityRecipe(method, mean=(0.25,), std=(0.5,)), out)  # type: ignore[arg-type]
    np.testing.assert_array_equal(out, -0.5)  # (0 - 0.25) / 0.5


def test_voi_values_are_only_normalised() -> None:
    x = np.linspace(0.0, 1.0, 11, dtype=np.float32).reshape(1, 11)
    out = np.empty((1, 1, 11), dtype=np.float32)
    apply_intensity_into(x, IntensityRecipe("voi", mean=(0.5,), std=(0.25,)), out)
    np.testing.assert_allclose(out[0], (x - 0.5) / 0.25, atol=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["windows", "percentile", "minmax", "voi"])
def test_non_finite_input_is_an_error(bad: float, method: str) -> None:
    x = np.zeros((2, 5, 5), dtype=np.float32)
    x[1, 2, 3] = bad
    wins = (Window(0.0, 1.0),) if method == "windows" else ()
    out = np.empty((1, *x.shape), dtype=np.float32)
    with pytest.raises(PreprocessingError, match="1 of 50 values are NaN or infinite"):
        apply_intensity_into(x, IntensityRecipe(method, windows=wins), out)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 17, 49])
def test_value_range_refuses_non_finite_values_wherever_they_are(bad: float, where: int) -> None:
    """min/max give the range and the exact finiteness test in one: NaN propagates through
    both, an infinite value is one of them (also first or last, and beside huge values)."""
    from medfuse.runtime.preprocess.intensity import value_range

    x = np.full(50, 3e38, dtype=np.float32)
    x[::2] = -1.0
    assert value_range(x, "v") == (-1.0, pytest.approx(3e38, rel=1e-6))
    x[where] = bad
    with pytest.raises(PreprocessingError, match="v: 1 of 50 values are NaN or infinite"):
        value_range(x.reshape(5, 10), "v")
    with pytest.raises(PreprocessingError, match="no values"):
        value_range(np.empty((0, 4), np.float32), "v")


def test_huge_finite_values_are_not_mistaken_for_inf() -> None:
    x = np.full((4, 4), 3e38, dtype=np.float32)  # the float32 sum overflows, the values do not
    out = np.empty((1, 4, 4), dtype=np.float32)
    apply_intensity_into(x, IntensityRecipe("minmax"), out)
    np.testing.assert_array_equal(out, 0.0)


def test_wrong_output_shape_is_an_error() -> None:
    recipe = IntensityRecipe(
        "windows", windows=(Window(0, 10), Window(0, 20)), mean=(0, 0), std=(1, 1)
    )
    with pytest.raises(PreprocessingError, match=r"shape \(2, 4, 4\)"):
        apply_intensity_into(np.zeros((4, 4), np.float32), recipe, np.empty((1, 4, 4), np.float32))


def test_windows_allocate_nothing_output_sized() -> None:
    x = np.random.default_rng(1).uniform(-1000, 1000, size=(32, 64, 64)).astype(np.float32)
    recipe = IntensityRecipe(
        "windows", windows=(Window(40, 400), Window(500, 2000, "SIGMOID")), mean=(0, 0), std=(1, 1)
    )
    out = np.empty((2, *x.shape), dtype=np.float32)
    apply_intensity_into(x, recipe, out)
    tracemalloc.start()
    try:
        apply_intensity_into(x, recipe, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 16, f"peak {peak} bytes, one channel is {x.nbytes}"
