"""Short builders for the common inputs and outputs of a :class:`ModelSpec`.

The Python twin of a spec file::

    from medfuse.export import ct_volume, radiograph, presence, classification, model_spec

    spec = model_spec(
        "chest-fusion", "1.0",
        inputs=[ct_volume("ct", size=(32, 64, 64)), radiograph("xray", replicate=3), presence()],
        outputs=[classification("diagnosis", ["normal", "nodule"])],
    )

Each builder returns the same frozen spec objects a spec file produces; :func:`model_spec`
resolves :func:`presence` to one column per image input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medfuse.bundle.spec import (
    BATCH,
    InputSpec,
    IntensityRecipe,
    ModelSpec,
    OutputSpec,
    PreprocessRecipe,
    ScalarRecipe,
    SeriesSelection,
    Window,
)
from medfuse.errors import ManifestError, SpecError

__all__ = [
    "PresenceInput",
    "classification",
    "ct_volume",
    "model_spec",
    "mr_volume",
    "presence",
    "radiograph",
    "regression",
    "scalar",
    "segmentation",
]

_CT_WINDOWS = (Window(40.0, 400.0), Window(-600.0, 1500.0))  # soft tissue, lung


def _image(
    name: str,
    modalities: tuple[str, ...],
    geometry: str,
    size: Sequence[int],
    intensity: IntensityRecipe,
    *,
    spacing: Sequence[float] | None,
    replicate: int,
    required: bool,
    modality: str,
) -> InputSpec:
    try:
        recipe = PreprocessRecipe(
            selection=SeriesSelection(
                modalities, "most_frames" if geometry == "volume" else "largest_area"
            ),
            geometry=geometry,  # type: ignore[arg-type]
            size=tuple(int(s) for s in size),
            intensity=intensity,
            spacing=None if spacing is None else tuple(float(s) for s in spacing),
            replicate=replicate,
        )
        layout = "NCDHW" if geometry == "volume" else "NCHW"
        return InputSpec(
            name,
            (BATCH, *recipe.tensor_shape),
            layout=layout,
            modality=modality,
            required=required,
            preprocessing=recipe,
        )
    except ManifestError as exc:
        raise SpecError(f"input {name!r}: {exc}") from None


def ct_volume(
    name: str = "ct",
    *,
    size: Sequence[int] = (32, 64, 64),
    windows: Sequence[tuple[float, float]] | None = None,
    spacing: Sequence[float] | None = None,
    replicate: int = 1,
    required: bool = False,
) -> InputSpec:
    """A CT volume ``(C, D, H, W)``: one channel per HU window ``(center, width)`` (default
    soft tissue 40/400 and lung -600/1500), mean 0 / std 1 after the window."""
    wins = _CT_WINDOWS if windows is None else tuple(Window(float(c), float(w)) for c, w in windows)
    n = len(wins)
    intensity = IntensityRecipe("windows", windows=wins, mean=(0.0,) * n, std=(1.0,) * n)
    return _image(
        name,
        ("CT",),
        "volume",
        size,
        intensity,
        spacing=spacing,
        replicate=replicate,
        required=required,
        modality="CT",
    )


def mr_volume(
    name: str = "mr",
    *,
    size: Sequence[int] = (32, 64, 64),
    percentiles: tuple[float, float] = (0.5, 99.5),
    spacing: Sequence[float] | None = None,
    replicate: int = 1,
    required: bool = False,
) -> InputSpec:
    """An MR volume ``(1 × replicate, D, H, W)``, clipped to the series' percentiles and
    scaled to [0, 1]."""
    intensity = IntensityRecipe("percentile", percentiles=percentiles)
    return _image(
        name,
        ("MR",),
        "volume",
        size,
        intensity,
        spacing=spacing,
        replicate=replicate,
        required=required,
        modality="MR",
    )


def radiograph(
    name: str = "xray",
    *,
    size: Sequence[int] = (224, 224),
    modalities: Sequence[str] = ("CR", "DX"),
    mean: float = 0.0,
    std: float = 1.0,
    replicate: int = 1,
    required: bool = False,
) -> InputSpec:
    """A projection radiograph ``(1 × replicate, H, W)`` through the file's own VOI window
    (polarity applied) to [0, 1], then ``(x - mean) / std``. ``replicate=3`` feeds a 3-channel
    ImageNet network."""
    intensity = IntensityRecipe("voi", mean=(float(mean),), std=(float(std),))
    return _image(
        name,
        tuple(modalities),
        "image",
        size,
        intensity,
        spacing=None,
        replicate=replicate,
        required=required,
        modality=next(iter(modalities)),
    )


@dataclass(frozen=True)
class PresenceInput:
    """A presence-mask input whose width :func:`model_spec` fills in."""

    name: str = "presence"


def presence(name: str = "presence") -> PresenceInput:
    """The presence mask: one column per image input, 1.0 where that input was filled."""
    return PresenceInput(name)


def scalar(
    name: str,
    source: str,
    *,
    parse: str = "number",
    offset: float = 0.0,
    scale: float = 1.0,
    default: float = 0.0,
) -> InputSpec:
    """A scalar input read from a DICOM attribute, e.g.
    ``scalar("age", "PatientAge", parse="age", offset=50, scale=20, default=50)``."""
    try:
        recipe = ScalarRecipe(source, parse, float(offset), float(scale), float(default))  # type: ignore[arg-type]
        return InputSpec(name, (BATCH, 1), role="scalar", scalar=recipe)
    except ManifestError as exc:
        raise SpecError(f"input {name!r}: {exc}") from None


def classification(
    name: str, labels: Sequence[str], *, activation: str = "softmax", meaning: str = ""
) -> OutputSpec:
    """Class scores ``(batch, len(labels))``."""
    return _output(name, (BATCH, len(labels)), "classification", labels, activation, meaning)


def regression(name: str, width: int = 1, *, meaning: str = "") -> OutputSpec:
    """Values ``(batch, width)`` reported as they are."""
    return _output(name, (BATCH, width), "regression", (), "identity", meaning)


def segmentation(
    name: str,
    labels: Sequence[str],
    spatial: Sequence[int],
    *,
    activation: str = "softmax",
    meaning: str = "",
) -> OutputSpec:
    """Segmentation logits ``(batch, len(labels), *spatial)`` on an image input's grid."""
    shape: tuple[int | str, ...] = (BATCH, len(labels), *(int(s) for s in spatial))
    return _output(name, shape, "segmentation", labels, activation, meaning)


def _output(
    name: str,
    shape: tuple[int | str, ...],
    kind: str,
    labels: Sequence[str],
    activation: str,
    meaning: str,
) -> OutputSpec:
    try:
        return OutputSpec(name, meaning, shape, kind, tuple(labels), activation)  # type: ignore[arg-type]
    except ManifestError as exc:
        raise SpecError(f"output {name!r}: {exc}") from None


def model_spec(
    name: str,
    version: str,
    *,
    inputs: Sequence[InputSpec | PresenceInput],
    outputs: Sequence[OutputSpec],
    description: str = "",
    min_present: int = 1,
) -> ModelSpec:
    """A :class:`ModelSpec` from builder parts, in the model's ``forward`` argument order."""
    k = sum(1 for i in inputs if isinstance(i, InputSpec) and i.role == "image")
    resolved = tuple(
        InputSpec(i.name, (BATCH, k), role="presence") if isinstance(i, PresenceInput) else i
        for i in inputs
    )
    try:
        return ModelSpec(
            name, version, resolved, tuple(outputs), description, min_present=min_present
        )
    except ManifestError as exc:
        raise SpecError(str(exc)) from None
