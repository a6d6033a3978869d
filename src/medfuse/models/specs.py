"""The model specs of medfuse's named fusion-network configurations (no torch needed).

Two configurations exist:

``reference``
    The compact network medfuse trains on synthetic studies and ships
    (``medfuse/data/reference.medfuse``): a CT volume ``(2, 32, 64, 64)`` with a soft-tissue and
    a bone window, an MR volume ``(1, 24, 64, 64)`` with percentile normalisation, an X-ray
    ``(1, 128, 128)`` with the file's own VOI window, and a presence mask. About 0.45 G
    multiply–accumulates (0.9 GFLOPs counting multiply and add separately) and 0.18 M
    parameters per study.
``resnet18-224``
    ResNet-18 encoders at 224×224 for every modality (volumes enter 2.5-D: their slices are
    mixed into three channels by a 1×1 convolution), about 5.5 G multiply–accumulates. Used for
    latency and quantization benchmarks: random weights for latency alone, briefly trained
    (``medfuse train --config resnet18-224``) where an accuracy gate must mean something.

Inputs are optional one by one (``required=False``): the ``presence`` column of a missing
modality is 0 and its tensor is all zeros, and the network ignores it. A study needs at least
one of the three image inputs.

Outputs: ``diagnosis`` — logits over :data:`CLASSES` (softmax gives probabilities);
``severity`` — lesion burden as ``log1p(mL)``: ``mL = expm1(severity)``.

This module is torch-free so that a spec can be built on a machine with only the runtime.
"""

from __future__ import annotations

from typing import Any

from medfuse.bundle.spec import (
    BATCH,
    InputSpec,
    IntensityRecipe,
    ModelSpec,
    OutputSpec,
    PreprocessRecipe,
    SeriesSelection,
    Window,
)
from medfuse.errors import UsageError

__all__ = ["CLASSES", "CONFIGS", "SEVERITY_TRANSFORM", "model_spec"]

CLASSES: tuple[str, ...] = ("normal", "cyst", "tumor", "calcification")
"""Diagnosis classes, in the order of the ``diagnosis`` output's columns."""

SEVERITY_TRANSFORM = "log1p_ml"
"""The severity output is ``log1p`` of the lesion burden in millilitres."""

CONFIGS: tuple[str, ...] = ("reference", "resnet18-224")
"""Names accepted by :func:`model_spec` and :func:`medfuse.models.build_model`."""

# Per-channel mean/std after the [0, 1] intensity mapping, measured on synthetic training
# studies (medfuse synth, seed 1) so that the network sees roughly zero-centred inputs.
_CT_SOFT = Window(center=40.0, width=400.0, function="LINEAR")
_CT_BONE = Window(center=500.0, width=2000.0, function="LINEAR")


def _ct(
    size: tuple[int, int, int], mean: tuple[float, float], std: tuple[float, float]
) -> InputSpec:
    recipe = PreprocessRecipe(
        selection=SeriesSelection(modalities=("CT",), rule="most_frames", min_frames=8),
        geometry="volume",
        size=size,
        intensity=IntensityRecipe(
            method="windows", windows=(_CT_SOFT, _CT_BONE), mean=mean, std=std
        ),
    )
    return InputSpec(
        name="ct",
        shape=(BATCH, 2, *size),
        layout="NCDHW",
        modality="CT",
        required=False,
        preprocessing=recipe,
    )


def _mr(size: tuple[int, int, int], mean: float, std: float) -> InputSpec:
    recipe = PreprocessRecipe(
        selection=SeriesSelection(modalities=("MR",), rule="most_frames", min_frames=8),
        geometry="volume",
        size=size,
        intensity=IntensityRecipe(
            method="percentile", percentiles=(1.0, 99.0), mean=(mean,), std=(std,)
        ),
    )
    return InputSpec(
        name="mr",
        shape=(BATCH, 1, *size),
        layout="NCDHW",
        modality="MR",
        required=False,
        preprocessing=recipe,
    )


def _xr(size: tuple[int, int], mean: float, std: float) -> InputSpec:
    recipe = PreprocessRecipe(
        selection=SeriesSelection(modalities=("CR", "DX"), rule="largest_area", min_frames=1),
        geometry="image",
        size=size,
        intensity=IntensityRecipe(method="voi", voi_index=0, mean=(mean,), std=(std,)),
    )
    return InputSpec(
        name="xr",
        shape=(BATCH, 1, *size),
        layout="NCHW",
        modality="CR/DX",
        required=False,
        preprocessing=recipe,
    )


def _presence() -> InputSpec:
    return InputSpec(name="presence", shape=(BATCH, 3), layout="NC", role="presence")


def _outputs() -> tuple[OutputSpec, ...]:
    return (
        OutputSpec(
            name="diagnosis",
            meaning="diagnosis logits; softmax over the labels gives class probabilities",
            shape=(BATCH, len(CLASSES)),
            kind="classification",
            labels=CLASSES,
            activation="softmax",
        ),
        OutputSpec(
            name="severity",
            meaning="lesion burden as log1p(mL); mL = expm1(value), 0 for a normal study",
            shape=(BATCH, 1),
            kind="regression",
            activation="identity",
        ),
    )


def _extra(config: str, note: str) -> dict[str, Any]:
    return {
        "config": config,
        "severity_transform": SEVERITY_TRANSFORM,
        "presence_columns": ["ct", "mr", "xr"],
        "inputs_note": (
            "every image input is optional; set its presence column to 0 and its tensor to "
            "zeros when the study lacks it; at least one image input must be present"
        ),
        "note": note,
    }


def model_spec(config: str = "reference") -> ModelSpec:
    """The :class:`~medfuse.bundle.spec.ModelSpec` of a named configuration.

    Parameters
    ----------
    config:
        One of :data:`CONFIGS`.

    Returns
    -------
    ModelSpec
        Inputs ``ct``, ``mr``, ``xr``, ``presence`` (in the order of the network's ``forward``)
        and outputs ``diagnosis``, ``severity``.

    Raises
    ------
    UsageError
        When ``config`` is not a known configuration.
    """
    if config == "reference":
        inputs = (
            _ct((32, 64, 64), mean=(0.14, 0.08), std=(0.23, 0.12)),
            _mr((24, 64, 64), mean=0.18, std=0.27),
            _xr((128, 128), mean=0.25, std=0.28),
            _presence(),
        )
        return ModelSpec(
            name="medfuse-reference",
            version="1.0.0",
            inputs=inputs,
            outputs=_outputs(),
            description=(
                "Compact CT + MR + X-ray fusion network (3-D/2-D conv encoders, masked attention "
                "over modality tokens) trained on medfuse's synthetic phantom studies."
            ),
            extra=_extra("reference", "trained on synthetic data; not for clinical use"),
        )
    if config == "resnet18-224":
        inputs = (
            _ct((16, 224, 224), mean=(0.14, 0.08), std=(0.23, 0.12)),
            _mr((16, 224, 224), mean=0.18, std=0.27),
            _xr((224, 224), mean=0.25, std=0.28),
            _presence(),
        )
        return ModelSpec(
            name="medfuse-resnet18-224",
            version="1.0.0",
            inputs=inputs,
            outputs=_outputs(),
            description=(
                "ResNet-18 encoders at 224x224 per modality (volumes 2.5-D), masked attention "
                "fusion; for latency benchmarks."
            ),
            extra=_extra("resnet18-224", "for latency and quantization benchmarks; not for clinical use"),
        )
    raise UsageError(f"unknown model configuration {config!r}; known: {', '.join(CONFIGS)}")
