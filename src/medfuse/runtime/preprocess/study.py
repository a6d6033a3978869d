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
from pathlib import Path
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec, PreprocessRecipe
from medfuse.errors import DicomError, NonFiniteDataError, NoUsableInputError, PreprocessingError
from medfuse.runtime.dicom import load_image, load_volume, read_frames
from medfuse.runtime.dicom.study import Instance, Series, Study
from medfuse.runtime.preprocess.intensity import apply_intensity_into, value_range
from medfuse.runtime.preprocess.plan import PlanOutcome, StudyPlan, plan_study
from medfuse.runtime.preprocess.resample import resample_volume_into, resize_image_into
from medfuse.runtime.preprocess.scalars import fill_scalars
from medfuse.runtime.results.outcomes import fault_exception
from medfuse.runtime.results.provenance import Notice, Provenance, reason_of
from medfuse.runtime.results.redaction import error_info, modality_term

__all__ = ["PreparedStudy", "preprocess_series", "preprocess_study"]

logger = logging.getLogger(__name__)

# A resampled spacing this far (ratio) from the recipe's is logged as a warning.
_SPACING_TOLERANCE = 2.0


@dataclass(frozen=True)
class PreparedStudy:
    """What :func:`preprocess_study` did for one study (no patient data).

    Attributes
    ----------
    provenance:
        Which series fed which input, why the others did not, and warnings; its presence rule
        is met (otherwise :class:`~medfuse.errors.NoUsableInputError` was raised).
    timing_ms:
        ``"read"`` (DICOM decode and pixel pipeline) and ``"preprocess"`` (resampling and
        intensity), summed over inputs, in milliseconds.
    spacing_mm:
        Image input → voxel spacing of its tensor grid in mm (same axis order as the recipe's
        ``size``), for the inputs whose series geometry is known.
    """

    provenance: Provenance
    timing_ms: Mapping[str, float] = field(default_factory=dict)
    spacing_mm: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def voxel_ml(self, spatial: tuple[int, ...], spec: ModelSpec) -> float | None:
        """Volume (mL) of one voxel of a 3-D grid of shape ``spatial``: taken from the first
        filled image input whose recipe size is ``spatial``; None when none is or its spacing
        is unknown."""
        if len(spatial) != 3:
            return None
        for inp in spec.image_inputs:
            got = self.spacing_mm.get(inp.name)
            if inp.preprocessing is not None and inp.preprocessing.size == spatial and got:
                return float(np.prod(got)) / 1000.0
        return None

    @property
    def present(self) -> tuple[str, ...]:
        """Image inputs filled from a series."""
        return self.provenance.present

    @property
    def missing(self) -> tuple[str, ...]:
        """Optional image inputs left empty (zeros, presence 0)."""
        return self.provenance.missing


@dataclass(frozen=True)
class _SeriesRead:
    """One series read into an input: timings and what was degraded on the way."""

    read_ms: float
    preprocess_ms: float
    notes: tuple[str, ...] = ()
    spacing: tuple[float, ...] | None = None


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


def _resampled_spacing(
    spacing: tuple[float, ...] | None, shape: tuple[int, ...], recipe: PreprocessRecipe
) -> tuple[float, ...] | None:
    """The spacing (mm) of the recipe's grid after the whole field of view was resampled."""
    if spacing is None or len(spacing) != len(recipe.size):
        return None
    return tuple(s * n0 / n for s, n0, n in zip(spacing, shape, recipe.size, strict=True))


def _spacing_off(
    spacing: tuple[float, ...] | None, shape: tuple[int, ...], recipe: PreprocessRecipe
) -> str | None:
    """A note when the series' spacing after resampling is far from the recipe's, else None."""
    got = _resampled_spacing(spacing, shape, recipe)
    if recipe.spacing is None or got is None:
        return None
    for g, want in zip(got, recipe.spacing, strict=True):
        if want > 0 and g > 0 and not 1 / _SPACING_TOLERANCE <= g / want <= _SPACING_TOLERANCE:
            return (
                f"resampled to {[round(x, 3) for x in got]} mm, more than {_SPACING_TOLERANCE:g}× "
                f"off the recipe's {list(recipe.spacing)} mm: the field of view differs from "
                "what the model was trained on"
            )
    return None


def _preprocess_series_timed(
    series: Series, recipe: PreprocessRecipe, out: NDArray[np.float32]
) -> _SeriesRead:
    """:func:`preprocess_series`, returning timings and notes (``geometry_unknown``,
    ``uneven_spacing``, ``spacing_off: …``)."""
    _check_out(out, recipe.tensor_shape, f"{modality_term(series.modality)} series")
    method = recipe.intensity.method
    notes: list[str] = []
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
        lo, hi = value_range(values, f"volume {list(values.shape)}")
        notes.extend(_content_notes(series, values.shape, lo == hi, recipe))
        resample_volume_into(values, (recipe.size[0], recipe.size[1], recipe.size[2]), out[0])
        notes.extend(volume.notes)
        off = _spacing_off(volume.spacing, values.shape, recipe) if volume.geometry_known else None
        grid = (
            _resampled_spacing(volume.spacing, values.shape, recipe)
            if volume.geometry_known
            else None
        )
    else:
        if method == "voi":
            frames = read_frames(first_instance(series).path, voi_index=recipe.intensity.voi_index)
            values, spacing = frames[0], None
        else:
            image = load_image(series)
            values, spacing = image.values, image.spacing
        t1 = time.perf_counter()
        lo, hi = value_range(values, f"image {list(values.shape)}")
        notes.extend(_content_notes(series, values.shape, lo == hi, recipe))
        resize_image_into(values, (recipe.size[0], recipe.size[1]), out[0])
        off = _spacing_off(spacing, values.shape, recipe)
        grid = _resampled_spacing(spacing, values.shape, recipe)
    if off is not None:
        notes.append(f"spacing_off: {off}")
    channels = recipe.intensity.channels
    apply_intensity_into(out[0], recipe.intensity, out[:channels])
    for r in range(1, recipe.replicate):  # channel replication (e.g. grey → ImageNet RGB)
        out[r * channels : (r + 1) * channels] = out[:channels]
    t2 = time.perf_counter()
    logger.debug(
        "%s %s %s -> %s (%s): read %.1f ms, preprocess %.1f ms",
        modality_term(series.modality),
        recipe.geometry,
        list(values.shape),
        list(out.shape),
        method,
        (t1 - t0) * 1e3,
        (t2 - t1) * 1e3,
    )
    return _SeriesRead((t1 - t0) * 1e3, (t2 - t1) * 1e3, tuple(notes), grid)


# An in-plane upscale this large (ratio) means the model sees interpolation, not detail.
_UPSCALE_WARN = 8.0


def _content_notes(
    series: Series, shape: tuple[int, ...], constant: bool, recipe: PreprocessRecipe
) -> list[str]:
    """Notes on what was read (of ``shape``; ``constant``: all its values are equal): all
    values equal, slices of differing pixel spacing, a tiny image blown up to the recipe's
    size."""
    notes: list[str] = []
    if constant:
        notes.append(
            "constant_values: every value of the series is the same (an empty image, or "
            "RescaleSlope 0): it carries no information"
        )
    spacings = {i.pixel_spacing for i in series.instances if i.pixel_spacing is not None}
    if len(spacings) > 1:
        notes.append(
            f"mixed_pixel_spacing: its files give {len(spacings)} different PixelSpacing "
            "values; the volume assumes one"
        )
    h, w = shape[-2:]
    want_h, want_w = recipe.size[-2:]
    scale = max(want_h / max(h, 1), want_w / max(w, 1))
    if scale >= _UPSCALE_WARN:
        notes.append(
            f"upscaled: a {h}×{w} image was enlarged {scale:.0f}× to {want_h}×{want_w}; the "
            "model sees interpolation, not detail"
        )
    return notes


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
    study: Study,
    spec: ModelSpec,
    out: Mapping[str, NDArray[np.float32]],
    *,
    plan: StudyPlan | None = None,
) -> PreparedStudy:
    """Fill one sample of every image input and the presence mask from a study.

    The series are planned from headers first (:func:`~medfuse.runtime.preprocess.plan_study`),
    so a study that cannot meet the model's presence rule fails before any pixel is read. Each
    input then takes its first candidate series that reads cleanly; a candidate that fails
    (unreadable file, pixel data of the wrong length, NaN…) is recorded and the next one tried
    — a series is used whole or not at all. A missing optional input's view is zeroed and its
    presence column set to 0; present inputs get 1.

    Parameters
    ----------
    study:
        A discovered study.
    spec:
        The model spec (inputs in order; image inputs carry recipes; the presence rule).
    out:
        Input name → per-sample view (without the batch axis) for every image input and for
        the presence input (shape ``(K,)``), written in place.
    plan:
        The study's plan, when the caller already made it.

    Returns
    -------
    PreparedStudy
        The provenance (which series fed which input, why the others did not, warnings) and
        timings.

    Raises
    ------
    NoUsableInputError
        The presence rule is not met (a required input, or too few inputs, could not be
        filled). It carries the provenance and, when a read failure emptied an input, that
        failure as ``fault``. The views are zeroed.
    PreprocessingError
        A buffer is missing or does not fit its input, or a recipe does not apply.
    """
    images = spec.image_inputs
    scalars = spec.scalar_inputs
    presence_spec = spec.presence_input
    needed = (
        [i.name for i in images]
        + [i.name for i in scalars]
        + ([presence_spec.name] if presence_spec else [])
    )
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
    for inp in images:
        assert inp.preprocessing is not None  # InputSpec guarantees it for image inputs
        _check_out(out[inp.name], inp.preprocessing.tensor_shape, f"input {inp.name!r}")
    for inp in scalars:
        _check_out(out[inp.name], (1,), f"input {inp.name!r}")

    plan = plan if plan is not None else plan_study(study, spec)
    if not plan.usable:  # from the headers alone: read nothing, so nothing is marked used
        _zero(out, needed)
        provenance = plan.provenance(PlanOutcome())
        raise _not_usable(provenance, fault_exception(provenance))
    outcome = PlanOutcome()

    read_ms = prep_ms = 0.0
    header: Path | None = None  # where scalar inputs are read: the first series used
    spacing: dict[str, tuple[float, ...]] = {}
    for i, inp in enumerate(images):
        assert inp.preprocessing is not None
        view = out[inp.name]
        filled = False
        for n in plan.candidates[inp.name]:
            series = plan.series[n - 1]
            try:
                done = _preprocess_series_timed(series, inp.preprocessing, view)
            except (DicomError, NonFiniteDataError) as exc:
                info = error_info(exc, stage="read", study=study)
                outcome.failed[n] = (reason_of(exc), f"{info.type}: {info.message}")
                if outcome.first_fault is None:
                    outcome.first_fault = exc
                continue
            read_ms += done.read_ms
            prep_ms += done.preprocess_ms
            frames = series.frames if inp.preprocessing.geometry == "volume" else 1
            outcome.used[inp.name] = (n, frames)
            if done.spacing is not None:
                spacing[inp.name] = done.spacing
            header = header or first_instance(series).path
            outcome.notices.extend(_notices(inp.name, n, done.notes))
            filled = True
            break
        if not filled:
            view.fill(0.0)
        if presence is not None:
            presence[i] = 1.0 if filled else 0.0
    if scalars and header is not None:
        outcome.notices.extend(fill_scalars(scalars, header, out))
    provenance = plan.provenance(outcome)
    if not provenance.rule_met:
        _zero(out, needed)
        raise _not_usable(provenance, outcome.first_fault)
    if provenance.missing:
        logger.info("study prepared without optional input(s) %s", list(provenance.missing))
    return PreparedStudy(
        provenance=provenance,
        timing_ms=MappingProxyType({"read": read_ms, "preprocess": prep_ms}),
        spacing_mm=MappingProxyType(spacing),
    )


_NOTE_TEXT = {
    "geometry_unknown": "slice positions, orientation or pixel spacing are missing: slices are "
    "ordered by InstanceNumber and 1 mm is assumed where spacing is unknown",
    "uneven_spacing": "slice spacing varies by more than 10 %",
}


def _notices(name: str, n: int, notes: tuple[str, ...]) -> list[Notice]:
    """The warnings of one input read from series ``n``."""
    out = []
    for note in notes:
        code, _, text = note.partition(": ")
        detail = text or _NOTE_TEXT.get(code, code)
        out.append(Notice(code, f"input {name}, series {n}: {detail}", input=name))
    return out


def _zero(out: Mapping[str, NDArray[np.float32]], names: list[str]) -> None:
    for name in names:
        out[name].fill(0.0)


def _not_usable(provenance: Provenance, fault: BaseException | None) -> NoUsableInputError:
    """The error for a study whose presence rule is not met, with a one-line summary."""
    why = "; ".join(
        f"{name}: {use.reason}" for name, use in provenance.inputs.items() if not use.present
    )
    return NoUsableInputError(
        f"the study does not meet the model's presence rule ({provenance.rule.describe()}); "
        f"{why or 'no input could be filled'}",
        provenance,
        fault,
    )
