"""The shared ModelSpec: validation names the bad field, and dicts round-trip."""

from __future__ import annotations

import json

import pytest

from medfuse.bundle.spec import (
    InputSpec,
    IntensityRecipe,
    ModelSpec,
    OutputSpec,
    PreprocessRecipe,
    SeriesSelection,
    Window,
)
from medfuse.errors import ManifestError


def _spec() -> ModelSpec:
    ct = PreprocessRecipe(
        selection=SeriesSelection(("CT",), min_frames=4),
        geometry="volume",
        size=(8, 16, 16),
        intensity=IntensityRecipe(
            method="windows",
            windows=(Window(40, 400), Window(500, 2000, "LINEAR_EXACT")),
            mean=(0.5, 0.2),
            std=(0.25, 0.2),
        ),
    )
    xr = PreprocessRecipe(
        selection=SeriesSelection(("CR", "DX"), rule="largest_area"),
        geometry="image",
        size=(32, 32),
        intensity=IntensityRecipe(method="voi"),
    )
    return ModelSpec(
        name="m",
        version="1",
        inputs=(
            InputSpec("ct", ("batch", 2, 8, 16, 16), layout="NCDHW", modality="CT", preprocessing=ct),
            InputSpec("xr", ("batch", 1, 32, 32), layout="NCHW", modality="XR", preprocessing=xr),
            InputSpec("presence", ("batch", 2), role="presence"),
        ),
        outputs=(
            OutputSpec("diagnosis", "class logits", ("batch", 2), labels=("a", "b")),
            OutputSpec("severity", "burden", ("batch", 1), kind="regression", activation="identity"),
        ),
    )


def test_round_trip_through_json() -> None:
    spec = _spec()
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert [i.name for i in again.image_inputs] == ["ct", "xr"]
    assert again.presence_input is not None and again.presence_input.name == "presence"
    assert again.input("ct").batch_shape(4) == (4, 2, 8, 16, 16)


def test_shape_must_match_recipe() -> None:
    d = _spec().to_dict()
    d["inputs"][0]["shape"] = ["batch", 3, 8, 16, 16]
    with pytest.raises(ManifestError, match=r"inputs\['ct'\]\.shape"):
        ModelSpec.from_dict(d)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("inputs", 0, "preprocessing", "intensity", "method"), "gamma", "intensity.method"),
        (("inputs", 0, "preprocessing", "geometry"), "mesh", "preprocessing.geometry"),
        (("inputs", 1, "preprocessing", "size"), [32], "preprocessing.size"),
        (("outputs", 0, "activation"), "relu", "activation"),
        (("inputs", 0, "preprocessing", "intensity", "std"), [0.1, 0.0], "intensity.std"),
    ],
)
def test_bad_field_is_named(path: tuple[object, ...], value: object, field: str) -> None:
    d = _spec().to_dict()
    node = d
    for p in path[:-1]:
        node = node[p]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    with pytest.raises(ManifestError, match=field.replace(".", r"\.")):
        ModelSpec.from_dict(d)


def test_missing_required_field_is_named() -> None:
    d = _spec().to_dict()
    del d["inputs"][1]["preprocessing"]["selection"]
    with pytest.raises(ManifestError, match=r"selection: required field is missing"):
        ModelSpec.from_dict(d)


def test_presence_width_must_match_image_inputs() -> None:
    d = _spec().to_dict()
    d["inputs"][2]["shape"] = ["batch", 3]
    with pytest.raises(ManifestError, match="presence mask needs shape"):
        ModelSpec.from_dict(d)


@pytest.mark.parametrize(("function", "width"), [("LINEAR", 0.5), ("LINEAR_EXACT", 0.0), ("SIGMOID", -1.0)])
def test_window_width_limits_follow_the_standard(function: str, width: float) -> None:
    with pytest.raises(ManifestError, match=r"window\.width"):
        Window(0.0, width, function)  # type: ignore[arg-type]
