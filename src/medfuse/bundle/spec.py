"""What a model takes and gives: the typed spec shared by training, export, manifest and runtime.

A :class:`ModelSpec` describes every input (name, shape with a dynamic batch axis, dtype, layout,
modality, and the full preprocessing recipe from DICOM to tensor) and every output (meaning,
class labels, activation). It is stored in the bundle's ``manifest.json``, so a device needs no
model code: the runtime's preprocessing reads the recipe and produces exactly the tensors the
model was trained on.

Conventions
-----------
- The batch axis is the first axis and is written ``"batch"`` in :attr:`InputSpec.shape`.
- Image inputs have role ``"image"``. A fusion model takes one extra input of role
  ``"presence"``, shape ``("batch", K)``, float32, where column ``i`` is 1.0 when the ``i``-th
  image input (in the order of :attr:`ModelSpec.inputs`) is present in the study and 0.0 when
  it is absent (that image input is then all zeros).
- Volumes are ``(batch, channels, depth, height, width)`` (layout ``"NCDHW"``); 2-D images are
  ``(batch, channels, height, width)`` (layout ``"NCHW"``).
- Intensity: modality values (HU for CT) are mapped to [0, 1] by the recipe's method, one
  output channel per window for ``"windows"``, then ``(x - mean[c]) / std[c]``; the recipe's
  ``replicate`` then repeats those channels (``replicate=3`` feeds a 3-channel ImageNet network
  from one grey channel) — in the runtime's preprocessing, not in a wrapper module.
- Non-image inputs have role ``"scalar"``, shape ``("batch", 1)``, float32: one number read
  from a declared source (a DICOM attribute such as PatientAge) and normalised by its
  :class:`ScalarRecipe`. The value feeds the model only; it is never written to results.
- Outputs are ``classification`` / ``regression`` vectors ``(batch, n)`` or ``segmentation``
  maps ``(batch, classes, D, H, W)`` / ``(batch, classes, H, W)``.

Only stdlib here: this module is part of the runtime tier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from medfuse.errors import ManifestError

__all__ = [
    "BATCH",
    "InputSpec",
    "IntensityRecipe",
    "ModelSpec",
    "OutputSpec",
    "PreprocessRecipe",
    "ScalarRecipe",
    "SeriesSelection",
    "Window",
]

BATCH = "batch"

VoiFunction = Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"]
IntensityMethod = Literal["windows", "percentile", "voi", "minmax"]
Geometry = Literal["volume", "image"]
SelectionRule = Literal["most_frames", "largest_area", "first"]
Activation = Literal["softmax", "sigmoid", "identity"]
OutputKind = Literal["classification", "regression", "segmentation"]
InputRole = Literal["image", "presence", "scalar"]
ScalarParse = Literal["number", "age"]

_VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_METHODS = ("windows", "percentile", "voi", "minmax")
_GEOMETRIES = ("volume", "image")
_RULES = ("most_frames", "largest_area", "first")
_ACTIVATIONS = ("softmax", "sigmoid", "identity")
_KINDS = ("classification", "regression", "segmentation")
_ROLES = ("image", "presence", "scalar")
_PARSES = ("number", "age")
_DTYPES = ("float32", "float16", "int8", "uint8", "int32", "int64")


def _get(d: Mapping[str, Any], key: str, where: str, default: Any = ...) -> Any:
    """Fetch ``d[key]`` or raise a ManifestError naming the field."""
    if not isinstance(d, Mapping):
        raise ManifestError(f"{where}: expected an object, got {type(d).__name__}")
    if key in d:
        return d[key]
    if default is ...:
        raise ManifestError(f"{where}.{key}: required field is missing")
    return default


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> Any:
    if value not in allowed:
        raise ManifestError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _num(value: Any, where: str) -> float:
    """A JSON number as float (not a bool or a string), or a ManifestError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _int(value: Any, where: str) -> int:
    """A JSON integer (not a bool or a string), or a ManifestError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"{where}: expected an integer, got {value!r}")
    return value


def _floats(value: Any, where: str, n: int | None = None) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: expected a list of numbers, got {value!r}") from exc
    if n is not None and len(out) != n:
        raise ManifestError(f"{where}: expected {n} numbers, got {len(out)}")
    return out


def _ints(value: Any, where: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: expected a list of integers, got {value!r}") from exc
    if any(v <= 0 for v in out):
        raise ManifestError(f"{where}: sizes must be positive, got {list(out)}")
    return out


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (HU for CT), PS3.3 C.11.2.1.2."""

    center: float
    width: float
    function: VoiFunction = "LINEAR"

    def __post_init__(self) -> None:
        _choice(self.function, _VOI_FUNCTIONS, "window.function")
        too_narrow = self.width < 1.0 if self.function == "LINEAR" else self.width <= 0.0
        if too_narrow:
            raise ManifestError(
                f"window.width: {self.width} is invalid for {self.function} "
                f"(LINEAR needs width >= 1, LINEAR_EXACT and SIGMOID need width > 0)"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"center": self.center, "width": self.width, "function": self.function}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "window") -> Window:
        return cls(
            center=_num(_get(d, "center", where), f"{where}.center"),
            width=_num(_get(d, "width", where), f"{where}.width"),
            function=_choice(_get(d, "function", where, "LINEAR"), _VOI_FUNCTIONS, f"{where}.function"),
        )


@dataclass(frozen=True)
class SeriesSelection:
    """Which series of a study feeds an input.

    ``modalities`` lists the DICOM Modality values accepted (e.g. ``("CR", "DX")``); among the
    matching series, ``rule`` picks one: the most frames (slices), the largest in-plane area,
    or the first in a stable order. Series with fewer than ``min_frames`` frames are ignored.
    """

    modalities: tuple[str, ...]
    rule: SelectionRule = "most_frames"
    min_frames: int = 1

    def __post_init__(self) -> None:
        if not self.modalities:
            raise ManifestError("selection.modalities: at least one modality is required")
        _choice(self.rule, _RULES, "selection.rule")

    def to_dict(self) -> dict[str, Any]:
        return {"modalities": list(self.modalities), "rule": self.rule, "min_frames": self.min_frames}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "selection") -> SeriesSelection:
        mods = _get(d, "modalities", where)
        if isinstance(mods, str) or not all(isinstance(m, str) for m in mods):
            raise ManifestError(f"{where}.modalities: expected a list of strings, got {mods!r}")
        return cls(
            modalities=tuple(mods),
            rule=_choice(_get(d, "rule", where, "most_frames"), _RULES, f"{where}.rule"),
            min_frames=_int(_get(d, "min_frames", where, 1), f"{where}.min_frames"),
        )


@dataclass(frozen=True)
class IntensityRecipe:
    """How modality values become normalised intensities, channel by channel.

    Methods
    -------
    ``"windows"``
        One output channel per :class:`Window` (e.g. CT soft tissue and bone), each mapping
        modality values to [0, 1] with the window's VOI function.
    ``"percentile"``
        One channel: clip to the ``percentiles`` of the whole series (MR), scale to [0, 1].
    ``"voi"``
        One channel: the file's own VOI number ``voi_index`` with polarity (X-ray), as
        :func:`medfuse.runtime.dicom.read_frames` does.
    ``"minmax"``
        One channel: the series' modality values scaled min–max to [0, 1].

    After that, channel ``c`` becomes ``(x - mean[c]) / std[c]``.
    """

    method: IntensityMethod
    windows: tuple[Window, ...] = ()
    percentiles: tuple[float, float] = (0.5, 99.5)
    voi_index: int = 0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        _choice(self.method, _METHODS, "intensity.method")
        if self.method == "windows" and not self.windows:
            raise ManifestError("intensity.windows: method 'windows' needs at least one window")
        lo, hi = self.percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise ManifestError(
                f"intensity.percentiles: {list(self.percentiles)} must satisfy 0 <= low < high <= 100"
            )
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ManifestError(
                f"intensity.mean/std: need {self.channels} value(s) each for method "
                f"{self.method!r}, got {len(self.mean)} and {len(self.std)}"
            )
        if any(s <= 0 for s in self.std):
            raise ManifestError(f"intensity.std: values must be positive, got {list(self.std)}")

    @property
    def channels(self) -> int:
        """Number of output channels this recipe produces."""
        return len(self.windows) if self.method == "windows" else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "windows": [w.to_dict() for w in self.windows],
            "percentiles": list(self.percentiles),
            "voi_index": self.voi_index,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "intensity") -> IntensityRecipe:
        windows = _get(d, "windows", where, [])
        if not isinstance(windows, list | tuple):
            raise ManifestError(f"{where}.windows: expected a list, got {windows!r}")
        pct = _floats(_get(d, "percentiles", where, [0.5, 99.5]), f"{where}.percentiles", 2)
        return cls(
            method=_choice(_get(d, "method", where), _METHODS, f"{where}.method"),
            windows=tuple(Window.from_dict(w, f"{where}.windows[{i}]") for i, w in enumerate(windows)),
            percentiles=(pct[0], pct[1]),
            voi_index=_int(_get(d, "voi_index", where, 0), f"{where}.voi_index"),
            mean=_floats(_get(d, "mean", where, [0.0]), f"{where}.mean"),
            std=_floats(_get(d, "std", where, [1.0]), f"{where}.std"),
        )


@dataclass(frozen=True)
class PreprocessRecipe:
    """From a study's DICOM series to one input tensor (without the batch axis).

    ``geometry="volume"``: the selected series' slices are sorted by position along the
    orientation normal and resampled to ``size = (depth, height, width)``; ``"image"``: a 2-D
    image (the first frame) resized to ``size = (height, width)``. ``spacing`` (mm, same order
    as ``size``) is informative: the recipe fits the series' whole field of view into ``size``
    and records the spacing it expects, so the runtime can warn when a series is far off.
    """

    selection: SeriesSelection
    geometry: Geometry
    size: tuple[int, ...]
    intensity: IntensityRecipe
    spacing: tuple[float, ...] | None = None
    replicate: int = 1

    def __post_init__(self) -> None:
        _choice(self.geometry, _GEOMETRIES, "preprocessing.geometry")
        if isinstance(self.replicate, bool) or not isinstance(self.replicate, int) or not 1 <= self.replicate <= 16:
            raise ManifestError(
                f"preprocessing.replicate: {self.replicate!r} must be an integer from 1 to 16 "
                "(3 feeds a 3-channel ImageNet network from one grey channel)"
            )
        want = 3 if self.geometry == "volume" else 2
        if len(self.size) != want or any(s <= 0 for s in self.size):
            raise ManifestError(
                f"preprocessing.size: {list(self.size)} must be {want} positive integers for "
                f"geometry {self.geometry!r}"
            )

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        """Shape of one preprocessed sample: ``(channels × replicate, *size)``."""
        return (self.intensity.channels * self.replicate, *self.size)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "selection": self.selection.to_dict(),
            "geometry": self.geometry,
            "size": list(self.size),
            "spacing": None if self.spacing is None else list(self.spacing),
            "intensity": self.intensity.to_dict(),
        }
        if self.replicate != 1:  # manifests without it stay byte-identical
            d["replicate"] = self.replicate
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "preprocessing") -> PreprocessRecipe:
        spacing = _get(d, "spacing", where, None)
        return cls(
            selection=SeriesSelection.from_dict(_get(d, "selection", where), f"{where}.selection"),
            geometry=_choice(_get(d, "geometry", where), _GEOMETRIES, f"{where}.geometry"),
            size=_ints(_get(d, "size", where), f"{where}.size"),
            spacing=None if spacing is None else _floats(spacing, f"{where}.spacing"),
            intensity=IntensityRecipe.from_dict(_get(d, "intensity", where), f"{where}.intensity"),
            replicate=_int(_get(d, "replicate", where, 1), f"{where}.replicate"),
        )


@dataclass(frozen=True)
class ScalarRecipe:
    """Where a scalar (non-image) input's value comes from and how it is normalised.

    ``source`` is a DICOM attribute keyword (e.g. ``"PatientAge"``), read from the study's
    first image header. ``parse`` says how its value becomes a number: ``"number"`` (DS, IS,
    US…) or ``"age"`` (an AS string such as ``"045Y"`` → 45.0 years; D / W / M are converted
    to years). The model receives ``(value - offset) / scale``; when the attribute is missing
    or unparseable, ``default`` (in the source's units) is used and the result record carries
    a ``scalar_default`` warning. The value itself is never written to a result.
    """

    source: str
    parse: ScalarParse = "number"
    offset: float = 0.0
    scale: float = 1.0
    default: float = 0.0

    def __post_init__(self) -> None:
        if not self.source.isidentifier() or not self.source[:1].isupper():
            raise ManifestError(
                f"scalar.source: {self.source!r} is not a DICOM attribute keyword "
                "(e.g. 'PatientAge', 'PatientWeight')"
            )
        _choice(self.parse, _PARSES, "scalar.parse")
        if not self.scale > 0:
            raise ManifestError(f"scalar.scale: {self.scale} must be positive")

    def normalise(self, raw: float) -> float:
        """The model's value for a raw value in the source's units."""
        return (raw - self.offset) / self.scale

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "parse": self.parse,
            "offset": self.offset,
            "scale": self.scale,
            "default": self.default,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "scalar") -> ScalarRecipe:
        source = _get(d, "source", where)
        if not isinstance(source, str):
            raise ManifestError(f"{where}.source: expected a DICOM keyword string, got {source!r}")
        return cls(
            source=source,
            parse=_choice(_get(d, "parse", where, "number"), _PARSES, f"{where}.parse"),
            offset=_num(_get(d, "offset", where, 0.0), f"{where}.offset"),
            scale=_num(_get(d, "scale", where, 1.0), f"{where}.scale"),
            default=_num(_get(d, "default", where, 0.0), f"{where}.default"),
        )


@dataclass(frozen=True)
class InputSpec:
    """One model input."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    layout: str = ""
    role: InputRole = "image"
    modality: str | None = None
    required: bool = False
    preprocessing: PreprocessRecipe | None = None
    scalar: ScalarRecipe | None = None

    def __post_init__(self) -> None:
        where = f"inputs[{self.name!r}]"
        if not self.name:
            raise ManifestError("inputs: an input has an empty name")
        _choice(self.role, _ROLES, f"{where}.role")
        _choice(self.dtype, _DTYPES, f"{where}.dtype")
        if not self.shape or self.shape[0] != BATCH:
            raise ManifestError(f"{where}.shape: {list(self.shape)} must start with {BATCH!r}")
        if any(not isinstance(s, int) or s <= 0 for s in self.shape[1:]):
            raise ManifestError(f"{where}.shape: {list(self.shape)} has a non-positive dimension")
        if self.role == "image":
            if self.preprocessing is None:
                raise ManifestError(f"{where}.preprocessing: an image input needs a recipe")
            if tuple(self.shape[1:]) != self.preprocessing.tensor_shape:
                raise ManifestError(
                    f"{where}.shape: {list(self.shape)} does not match the recipe's tensor shape "
                    f"{[BATCH, *self.preprocessing.tensor_shape]}"
                )
        if (self.role == "scalar") != (self.scalar is not None):
            raise ManifestError(
                f"{where}.scalar: a scalar input needs a scalar recipe, and only a scalar input "
                "may have one"
            )
        if self.role == "scalar" and (tuple(self.shape[1:]) != (1,) or self.dtype != "float32"):
            raise ManifestError(
                f"{where}.shape: a scalar input is float32 of shape [{BATCH!r}, 1], got "
                f"{self.dtype} {list(self.shape)}"
            )

    def sample_shape(self) -> tuple[int, ...]:
        """Shape without the batch axis."""
        return tuple(int(s) for s in self.shape[1:])

    def batch_shape(self, batch: int) -> tuple[int, ...]:
        """Shape with the batch axis set to ``batch``."""
        return (batch, *self.sample_shape())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
            "role": self.role,
            "modality": self.modality,
            "required": self.required,
            "preprocessing": None if self.preprocessing is None else self.preprocessing.to_dict(),
        } | ({} if self.scalar is None else {"scalar": self.scalar.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "inputs[?]") -> InputSpec:
        pre = _get(d, "preprocessing", where, None)
        scalar = _get(d, "scalar", where, None)
        role = _choice(_get(d, "role", where, "image"), _ROLES, f"{where}.role")
        shape = _get(d, "shape", where)
        if not isinstance(shape, list | tuple):
            raise ManifestError(f"{where}.shape: expected a list, got {shape!r}")
        return cls(
            name=str(_get(d, "name", where)),
            shape=tuple(shape),
            dtype=str(_get(d, "dtype", where, "float32")),
            layout=str(_get(d, "layout", where, "")),
            role=role,
            modality=_get(d, "modality", where, None),
            required=bool(_get(d, "required", where, False)),
            preprocessing=None if pre is None else PreprocessRecipe.from_dict(pre, f"{where}.preprocessing"),
            scalar=None if scalar is None else ScalarRecipe.from_dict(scalar, f"{where}.scalar"),
        )


@dataclass(frozen=True)
class OutputSpec:
    """One model output: ``(batch, n)`` logits or values, or a segmentation map.

    A ``segmentation`` output is ``(batch, classes, D, H, W)`` or ``(batch, classes, H, W)``
    logits on the grid of the image input whose recipe ``size`` matches its spatial shape;
    ``softmax`` makes a label map (argmax), ``sigmoid`` one mask per class (> 0.5). Results
    carry per-class voxel fractions (and volumes in mL when the voxel spacing is known),
    not the masks; ``medfuse run --masks DIR`` writes the label maps as files.
    """

    name: str
    meaning: str
    shape: tuple[int | str, ...]
    kind: OutputKind = "classification"
    labels: tuple[str, ...] = ()
    activation: Activation = "softmax"

    def __post_init__(self) -> None:
        where = f"outputs[{self.name!r}]"
        _choice(self.kind, _KINDS, f"{where}.kind")
        _choice(self.activation, _ACTIVATIONS, f"{where}.activation")
        if not self.shape or self.shape[0] != BATCH:
            raise ManifestError(f"{where}.shape: {list(self.shape)} must start with {BATCH!r}")
        if self.kind == "segmentation":
            if len(self.shape) not in (4, 5) or any(
                not isinstance(s, int) or s <= 0 for s in self.shape[1:]
            ):
                raise ManifestError(
                    f"{where}.shape: {list(self.shape)}; a segmentation output is "
                    f"[{BATCH!r}, classes, D, H, W] or [{BATCH!r}, classes, H, W]"
                )
            if self.activation == "identity":
                raise ManifestError(
                    f"{where}.activation: a segmentation output needs 'softmax' (label map) "
                    "or 'sigmoid' (one mask per class)"
                )
        width = self.shape[1] if self.kind == "segmentation" else self.shape[-1]
        if self.labels and width != len(self.labels):
            raise ManifestError(
                f"{where}.labels: {len(self.labels)} labels for an output of width {width}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "meaning": self.meaning,
            "shape": list(self.shape),
            "kind": self.kind,
            "labels": list(self.labels),
            "activation": self.activation,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "outputs[?]") -> OutputSpec:
        shape = _get(d, "shape", where)
        if not isinstance(shape, list | tuple):
            raise ManifestError(f"{where}.shape: expected a list, got {shape!r}")
        labels = _get(d, "labels", where, [])
        if not isinstance(labels, list | tuple):
            raise ManifestError(f"{where}.labels: expected a list of strings, got {labels!r}")
        return cls(
            name=str(_get(d, "name", where)),
            meaning=str(_get(d, "meaning", where, "")),
            shape=tuple(shape),
            kind=_choice(_get(d, "kind", where, "classification"), _KINDS, f"{where}.kind"),
            labels=tuple(str(x) for x in labels),
            activation=_choice(_get(d, "activation", where, "softmax"), _ACTIVATIONS, f"{where}.activation"),
        )


@dataclass(frozen=True)
class ModelSpec:
    """A model's name, version, inputs and outputs — everything a device needs besides weights.

    The **presence rule** says when a study may be given a result at all: every image input
    marked ``required`` must be filled from a series, and at least ``min_present`` image inputs
    in all (default 1: a diagnosis never rests on no image). A study that does not meet it gets
    the status ``no_usable_input`` and no outputs.
    """

    name: str
    version: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    min_present: int = 1

    def __post_init__(self) -> None:
        if not self.inputs or not self.outputs:
            raise ManifestError("model spec: needs at least one input and one output")
        names = [i.name for i in self.inputs] + [o.name for o in self.outputs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ManifestError(f"model spec: tensor names must be unique, repeated: {dup}")
        n_images = len(self.image_inputs)
        if n_images and not 1 <= self.min_present <= n_images:
            raise ManifestError(
                f"model spec: min_present {self.min_present} must be between 1 and the number "
                f"of image inputs ({n_images}); a result may never rest on no image"
            )
        presence = [i for i in self.inputs if i.role == "presence"]
        if len(presence) > 1:
            raise ManifestError("model spec: at most one presence input is allowed")
        if presence and presence[0].sample_shape() != (len(self.image_inputs),):
            raise ManifestError(
                f"inputs[{presence[0].name!r}].shape: a presence mask needs shape "
                f"[batch, {len(self.image_inputs)}] (one column per image input)"
            )

    @property
    def image_inputs(self) -> tuple[InputSpec, ...]:
        """The image inputs, in order (the presence mask's column order)."""
        return tuple(i for i in self.inputs if i.role == "image")

    @property
    def scalar_inputs(self) -> tuple[InputSpec, ...]:
        """The scalar (non-image) inputs, in order."""
        return tuple(i for i in self.inputs if i.role == "scalar")

    @property
    def presence_input(self) -> InputSpec | None:
        """The presence-mask input, if the model has one."""
        return next((i for i in self.inputs if i.role == "presence"), None)

    @property
    def required_inputs(self) -> tuple[str, ...]:
        """Names of the image inputs marked ``required``."""
        return tuple(i.name for i in self.image_inputs if i.required)

    def input(self, name: str) -> InputSpec:
        """The input called ``name``."""
        for i in self.inputs:
            if i.name == name:
                return i
        raise KeyError(f"no input {name!r}; inputs are {[i.name for i in self.inputs]}")

    def output(self, name: str) -> OutputSpec:
        """The output called ``name``."""
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(f"no output {name!r}; outputs are {[o.name for o in self.outputs]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "inputs": [i.to_dict() for i in self.inputs],
            "outputs": [o.to_dict() for o in self.outputs],
            "extra": dict(self.extra),
            "min_present": self.min_present,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "model") -> ModelSpec:
        inputs = _get(d, "inputs", where)
        outputs = _get(d, "outputs", where)
        if not isinstance(inputs, list) or not isinstance(outputs, list):
            raise ManifestError(f"{where}: inputs and outputs must be lists")
        extra = _get(d, "extra", where, {})
        if not isinstance(extra, Mapping):
            raise ManifestError(f"{where}.extra: expected an object, got {extra!r}")
        return cls(
            name=str(_get(d, "name", where)),
            version=str(_get(d, "version", where)),
            description=str(_get(d, "description", where, "")),
            inputs=tuple(InputSpec.from_dict(x, f"{where}.inputs[{i}]") for i, x in enumerate(inputs)),
            outputs=tuple(
                OutputSpec.from_dict(x, f"{where}.outputs[{i}]") for i, x in enumerate(outputs)
            ),
            extra=dict(extra),
            min_present=_int(_get(d, "min_present", where, 1), f"{where}.min_present"),
        )
