"""Intensity recipes: modality values → normalised channels, written into caller-owned buffers.

Each channel is first mapped to [0, 1] by the recipe's method, then becomes
``(x - mean[c]) / std[c]``. The two steps are fused into one affine map (plus a clip or a
``tanh``) evaluated with NumPy ``out=`` arguments, so no array of the output's size is
allocated. ``values`` may be ``out[0]`` itself (the preprocessing resamples into ``out[0]``
and maps it in place): channels are written last to first.

Window functions follow PS3.3 C.11.2.1.2 with output range [0, 1]:

- ``LINEAR``: 0 for ``x <= c - 0.5 - (w-1)/2``, 1 for ``x > c - 0.5 + (w-1)/2``, else
  ``(x - (c - 0.5)) / (w - 1) + 0.5`` (for ``w == 1`` a step at ``c - 0.5``);
- ``LINEAR_EXACT``: ``(x - c) / w + 0.5`` clipped to [0, 1];
- ``SIGMOID``: ``1 / (1 + exp(-4 (x - c) / w))``, evaluated as ``0.5 + 0.5 tanh(2 (x - c) / w)``
  (the same function, with no overflow for values far from the centre).

``percentile`` clips to the recipe's percentiles of ``values`` (in the pipeline: the resampled
series, which is what the model sees, and cheaper than the source) and scales to [0, 1];
``minmax`` scales ``values`` min–max to [0, 1]; ``voi`` takes values already in [0, 1]. A
constant input maps to 0 before ``mean``/``std``, never to NaN.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import IntensityRecipe, Window
from medfuse.errors import NonFiniteDataError, PreprocessingError
from medfuse.runtime.dicom.processing import VoiWindow, linear_coefficients

__all__ = ["apply_intensity_into", "apply_window_into", "require_finite", "value_range"]


def require_finite(arr: NDArray[np.floating], what: str) -> None:
    """Raise :class:`~medfuse.errors.NonFiniteDataError` if ``arr`` holds NaN or ±inf.

    A float32 sum is the fast test (any NaN/inf makes it non-finite); only when it is not
    finite is the exact, allocating element test run, to tell overflow from bad values.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(arr, axis=None)
    if not np.isfinite(total):
        _refuse_non_finite(arr, what)


def value_range(arr: NDArray[np.floating], what: str) -> tuple[float, float]:
    """``(min, max)`` of a non-empty ``arr``; :class:`~medfuse.errors.NonFiniteDataError` if it
    holds NaN or ±inf.

    Two passes that also test finiteness exactly (NaN propagates through ``min`` and ``max``,
    and an infinite value is one of them), where a check and a range took three.
    """
    if arr.size == 0:
        raise PreprocessingError(f"{what}: no values; the series holds an empty image")
    lo, hi = float(np.min(arr)), float(np.max(arr))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        _refuse_non_finite(arr, what)
    return lo, hi


def _refuse_non_finite(arr: NDArray[np.floating], what: str) -> None:
    """Count the NaN / infinite values (the exact, allocating test) and raise if there are any."""
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise NonFiniteDataError(
            f"{what}: {bad} of {arr.size} values are NaN or infinite; the series cannot be "
            "normalised (check the file's pixel data and rescale values)"
        )


def _affine_clip_into(
    values: NDArray[np.float32],
    scale: float,
    offset: float,
    lo: float | None,
    hi: float | None,
    out: NDArray[np.float32],
) -> None:
    """``out = clip(values * scale + offset, lo, hi)`` in float32, in at most three passes."""
    np.multiply(values, np.float32(scale), out=out)
    if offset != 0.0:
        np.add(out, np.float32(offset), out=out)
    if lo is not None and hi is not None:
        np.clip(out, np.float32(lo), np.float32(hi), out=out)


def apply_window_into(
    values: NDArray[np.float32],
    window: Window,
    out: NDArray[np.float32],
    *,
    mean: float = 0.0,
    std: float = 1.0,
) -> None:
    """Map modality values through a VOI window to [0, 1], then ``(y - mean) / std``, into ``out``.

    Parameters
    ----------
    values:
        float32 modality values (HU for CT), any shape.
    window:
        Center, width and VOI function (PS3.3 C.11.2.1.2).
    out:
        float32 array of the same shape, written in place; may be ``values`` itself.
    mean, std:
        Normalisation applied after the window (``std > 0``).
    """
    c, w = float(window.center), float(window.width)
    inv = 1.0 / float(std)
    shift = -float(mean) * inv
    if window.function == "SIGMOID":
        # 1/(1+exp(-t)) == 0.5 + 0.5 tanh(t/2), t = 4 (x - c) / w
        _affine_clip_into(values, 2.0 / w, -2.0 * c / w, None, None, out)
        np.tanh(out, out=out)
        _affine_clip_into(out, 0.5 * inv, 0.5 * inv + shift, None, None, out)
        return
    coef = linear_coefficients(VoiWindow(c, w, window.function))
    if coef is None:  # LINEAR with width 1 is a step at c - 0.5
        np.greater(values, np.float32(c - 0.5), out=out)
        _affine_clip_into(out, inv, shift, None, None, out)
        return
    scale, offset = coef
    # clip(x*s + o, 0, 1) * inv + shift == clip(x*s*inv + o*inv + shift, shift, inv + shift)
    _affine_clip_into(values, scale * inv, offset * inv + shift, shift, inv + shift, out)


def _range_into(
    values: NDArray[np.float32],
    lo: float,
    hi: float,
    mean: float,
    std: float,
    out: NDArray[np.float32],
) -> None:
    """``out = (clip((values - lo) / (hi - lo), 0, 1) - mean) / std``; 0 before mean/std if hi <= lo."""
    inv = 1.0 / std
    shift = -mean * inv
    if not hi > lo:
        out.fill(np.float32(shift))
        return
    scale = 1.0 / (hi - lo)
    _affine_clip_into(values, scale * inv, -lo * scale * inv + shift, shift, inv + shift, out)


def apply_intensity_into(
    values: NDArray[np.float32], recipe: IntensityRecipe, out: NDArray[np.float32]
) -> None:
    """Apply an intensity recipe to ``values``, writing ``recipe.channels`` channels into ``out``.

    Parameters
    ----------
    values:
        float32 array of spatial shape ``S`` (``(D, H, W)`` or ``(H, W)``): modality values for
        ``windows`` / ``percentile`` / ``minmax``, values in [0, 1] for ``voi``.
    recipe:
        The intensity recipe (method, windows, percentiles, mean, std).
    out:
        float32 array of shape ``(recipe.channels, *S)``, written in place. ``values`` may be
        ``out[0]``; it must not overlap any other channel.

    Raises
    ------
    PreprocessingError
        Shapes do not fit, or ``values`` or the result hold NaN / inf.
    """
    shape = (recipe.channels, *values.shape)
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or tuple(out.shape) != shape:
        got = f"{out.dtype} {tuple(out.shape)}" if isinstance(out, np.ndarray) else type(out)
        raise PreprocessingError(
            f"intensity {recipe.method!r}: output must be float32 of shape {shape}, got {got}"
        )
    if values.dtype != np.float32:
        values = values.astype(np.float32)
    for c in range(1, recipe.channels):
        if np.shares_memory(values, out[c]):
            raise PreprocessingError(
                f"intensity {recipe.method!r}: values overlap output channel {c}; only out[0] may "
                "be used as the input"
            )
    require_finite(values, f"intensity {recipe.method!r} input")

    if recipe.method == "windows":
        # Last channel first: values may be out[0], which must stay intact until the end.
        for c in reversed(range(recipe.channels)):
            apply_window_into(
                values, recipe.windows[c], out[c], mean=recipe.mean[c], std=recipe.std[c]
            )
    elif recipe.method == "percentile":
        lo, hi = np.percentile(values, recipe.percentiles)
        _range_into(values, float(lo), float(hi), recipe.mean[0], recipe.std[0], out[0])
    elif recipe.method == "minmax":
        lo, hi = float(values.min()), float(values.max())
        _range_into(values, lo, hi, recipe.mean[0], recipe.std[0], out[0])
    else:  # voi: already [0, 1]
        _affine_clip_into(
            values, 1.0 / recipe.std[0], -recipe.mean[0] / recipe.std[0], None, None, out[0]
        )
    require_finite(out, f"intensity {recipe.method!r} result")
