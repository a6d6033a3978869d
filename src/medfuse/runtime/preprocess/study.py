"""From a discovered study to the model's input buffers, following the ModelSpec's recipes.

:func:`preprocess_series` reads one series and writes one input tensor (without the batch
axis) into a caller-owned view, typically a per-sample slice of a bound input buffer;
:func:`preprocess_study` does it for every image input of a model and fills the presence mask.

Order of work for a volume: read (modality values, slices sorted along the normal) → resample
the whole field of view into ``out[0]`` → intensity recipe from ``out[0]`` into every channel
(last channel first, so ``out[0]`` is the resampled data until it is itself mapped). Intensity
runs after resampling because there are fewer voxels to map; percentiles are taken over the
resampled data. No array of the output's size is allocated (the percentile recipe's partition
needs one temporary of one channel's size).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec, PreprocessRecipe
from medfuse.errors import PreprocessingError, StudyError
from medfuse.runtime.dicom import load_image, load_volume, read_frames
from medfuse.runtime.dicom.study import Instance, Series, Study
from medfuse.runtime.preprocess.intensity import apply_intensity_into, require_finite
from medfuse.runtime.preprocess.resample import resample_volume_into, resize_image_into
from medfuse.runtime.preprocess.select import select_series

__all__ = ["PreparedStudy", "preprocess_series", "preprocess_study"]

logger = logging.getLogger(__name__)

# A resampled spacing this far (ratio) from the recipe's is logged as a warning.
_SPACING_TOLERANCE = 2.0


@dataclass(frozen=True)
class PreparedStudy:
    """What :func:`preprocess_study` did for one study (no patient data).

    Attributes
    ----------
    present, missing:
        Names of the image inputs that were filled from a series / zeroed as absent.
    modalities_used:
        Input name → DICOM Modality of the series that fed it (present inputs only).
    timing_ms:
        ``"read"`` (DICOM decode and pixel pipeline) and ``"preprocess"`` (resampling and
        intensity), summed over inputs, in milliseconds.
    """

    present: tuple[str, ...]
    missing: tuple[str, ...]
    modalities_used: Mapping[str, str] = field(default_factory=dict)
    timing_ms: Mapping[str, float] = field(default_factory=dict)


def _check_out(out: NDArray[np.float32], shape: tuple[int, ...], what: str) -> None:
    """Raise unless ``out`` is a C-contiguous float32 array of ``shape``."""
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or tuple(out.shape) != shape:
        got = (
            f"{out.dtype} {list(out.shape)}" if isinstance(out, np.ndarray) else type(out).__name__
        )
        raise PreprocessingError(
            f"{what}: buffer must be float32 of shape {list(shape)}, got {got}"
        )
    if not out.flags.c_contiguous:
        raise PreprocessingError(f"{what}: buffer of shape {list(shape)} must be C-contiguous")


def first_instance(series: Series) -> Instance:
    """The file a 2-D recipe reads: the series' first instance, the same one ``load_image`` reads."""
    return series.instances[0]


def _warn_spacing(
    spacing: tuple[float, ...] | None, shape: tuple[int, ...], recipe: PreprocessRecipe
) -> None:
    """Log when the series' spacing after resampling is far from the recipe's."""
    if recipe.spacing is None or spacing is None or len(spacing) != len(recipe.size):
        return
    got = tuple(s * n0 / n for s, n0, n in zip(spacing, shape, recipe.size, strict=True))
    for g, want in zip(got, recipe.spacing, strict=True):
        if want > 0 and g > 0 and not 1 / _SPACING_TOLERANCE <= g / want <= _SPACING_TOLERANCE:
            logger.warning(
                "resampled spacing %s mm is more than %gx off the recipe's %s mm; the series' "
                "field of view differs from what the model was trained on",
                [round(x, 3) for x in got],
                _SPACING_TOLERANCE,
                list(recipe.spacing),
            )
            return


def _preprocess_series_timed(
    series: Series, recipe: PreprocessRecipe, out: NDArray[np.float32]
) -> tuple[float, float]:
    """:func:`preprocess_series`, returning (read ms, preprocess ms)."""
    _check_out(out, recipe.tensor_shape, f"{series.modality or '?'} series")
    method = recipe.intensity.method
    t0 = time.perf_counter()
    if recipe.geometry == "volume":
        if method == "voi":
            raise PreprocessingError(
                "intensity 'voi' (the file's own display window) applies to geometry 'image'; "
                "for a volume use 'windows', 'percentile' or 'minmax'"
            )
        volume = load_volume(series)
        values = volume.values
        t1 = time.perf_counter()
        require_finite(values, f"{series.modality} volume {list(values.shape)}")
        resample_volume_into(values, (recipe.size[0], recipe.size[1], recipe.size[2]), out[0])
        if volume.geometry_known:
            _warn_spacing(volume.spacing, values.shape, recipe)
    else:
        if method == "voi":
            frames = read_frames(first_instance(series).path, voi_index=recipe.intensity.voi_index)
            values, spacing = frames[0], None
        else:
            image = load_image(series)
            values, spacing = image.values, image.spacing
        t1 = time.perf_counter()
        require_finite(values, f"{series.modality} image {list(values.shape)}")
        resize_image_into(values, (recipe.size[0], recipe.size[1]), out[0])
        _warn_spacing(spacing, values.shape, recipe)
    apply_intensity_into(out[0], recipe.intensity, out)
    t2 = time.perf_counter()
    logger.debug(
        "%s %s %s -> %s (%s): read %.1f ms, preprocess %.1f ms",
        series.modality,
        recipe.geometry,
        list(values.shape),
        list(out.shape),
        method,
        (t1 - t0) * 1e3,
        (t2 - t1) * 1e3,
    )
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3


def preprocess_series(series: Series, recipe: PreprocessRecipe, out: NDArray[np.float32]) -> None:
    """Read ``series`` and write its preprocessed tensor into ``out``, in place.

    Parameters
    ----------
    series:
        The selected series (see :func:`select_series`).
    recipe:
        The input's recipe. ``geometry="volume"``: :func:`~medfuse.runtime.dicom.load_volume`,
        whole field of view resampled to ``size`` (:func:`resample_volume_into`), then the
        intensity recipe. ``geometry="image"``: for ``voi``, the first frame of the first
        instance through :func:`~medfuse.runtime.dicom.read_frames` with ``voi_index``
        (already in [0, 1], polarity applied); otherwise
        :func:`~medfuse.runtime.dicom.load_image`; then resized to ``size`` and mapped.
    out:
        float32, C-contiguous, shape ``recipe.tensor_shape`` (``(C, D, H, W)`` or
        ``(C, H, W)``): a view into a model input buffer. It is overwritten entirely; the
        caller keeps ownership.

    Raises
    ------
    DicomError
        The series could not be read (from :mod:`medfuse.runtime.dicom`).
    PreprocessingError
        ``out`` does not fit the recipe, the recipe does not apply to the geometry, or the
        data hold NaN / inf.
    """
    _preprocess_series_timed(series, recipe, out)


def preprocess_study(
    study: Study, spec: ModelSpec, out: Mapping[str, NDArray[np.float32]]
) -> PreparedStudy:
    """Fill one sample of every image input and the presence mask from a study.

    Series are selected first for every input, so a study missing a required modality fails
    before any pixel is read. A missing optional input's view is zeroed and its presence
    column set to 0; present inputs get 1.

    Parameters
    ----------
    study:
        A discovered study.
    spec:
        The model spec (inputs in order; image inputs carry recipes).
    out:
        Input name → per-sample view (without the batch axis) for every image input and for
        the presence input (shape ``(K,)``), written in place.

    Returns
    -------
    PreparedStudy
        Which inputs were present or missing, the modality used for each, and timings.

    Raises
    ------
    StudyError
        A required input has no matching series (the message names the input and the
        modalities it accepts).
    PreprocessingError
        A buffer is missing or does not fit its input.
    DicomError
        A selected series could not be read.
    """
    images = spec.image_inputs
    presence_spec = spec.presence_input
    needed = [i.name for i in images] + ([presence_spec.name] if presence_spec else [])
    absent_keys = [n for n in needed if n not in out]
    if absent_keys:
        raise PreprocessingError(
            f"no buffer for input(s) {absent_keys}; preprocess_study needs one view per input "
            f"of {needed}"
        )
    presence: NDArray[np.float32] | None = None
    if presence_spec is not None:
        presence = out[presence_spec.name]
        _check_out(presence, (len(images),), f"input {presence_spec.name!r}")

    chosen: list[Series | None] = []
    for inp in images:
        assert inp.preprocessing is not None  # InputSpec guarantees it for image inputs
        _check_out(out[inp.name], inp.preprocessing.tensor_shape, f"input {inp.name!r}")
        sel = inp.preprocessing.selection
        series = select_series(study, sel)
        if series is None and inp.required:
            raise StudyError(
                f"input {inp.name!r} is required and needs a {'/'.join(sel.modalities)} series "
                f"with at least {sel.min_frames} frame(s); the study has modalities "
                f"{list(study.modalities) or 'none'}"
            )
        chosen.append(series)

    present: list[str] = []
    missing: list[str] = []
    used: dict[str, str] = {}
    read_ms = prep_ms = 0.0
    for i, (inp, series) in enumerate(zip(images, chosen, strict=True)):
        assert inp.preprocessing is not None
        if series is None:
            out[inp.name].fill(0.0)
            missing.append(inp.name)
        else:
            r, p = _preprocess_series_timed(series, inp.preprocessing, out[inp.name])
            read_ms += r
            prep_ms += p
            present.append(inp.name)
            used[inp.name] = series.modality
        if presence is not None:
            presence[i] = 1.0 if series is not None else 0.0
    if missing:
        logger.info("study prepared without optional input(s) %s", missing)
    return PreparedStudy(
        present=tuple(present),
        missing=tuple(missing),
        modalities_used=MappingProxyType(used),
        timing_ms=MappingProxyType({"read": read_ms, "preprocess": prep_ms}),
    )
