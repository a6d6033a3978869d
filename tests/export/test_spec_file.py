"""Spec files: the examples load, bad fields are named, and the published JSON Schema agrees."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import SpecError
from medfuse.export import (
    classification,
    ct_volume,
    load_spec,
    model_spec,
    presence,
    radiograph,
    scalar,
    segmentation,
    spec_from_dict,
    spec_schema,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def _doc(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.*")), ids=lambda p: p.name)
def test_examples_load_and_pass_the_schema(path: Path) -> None:
    spec = load_spec(path)
    jsonschema.validate(_doc(path), spec_schema())
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_shapes_are_filled_from_recipes() -> None:
    spec = load_spec(EXAMPLES / "late-fusion.yaml")
    assert spec.input("ct").shape == ("batch", 2, 32, 64, 64)
    assert spec.input("presence").shape == ("batch", 2)
    assert spec.input("age").shape == ("batch", 1)
    xray = load_spec(EXAMPLES / "xray-resnet.json").input("xray")
    assert xray.shape == ("batch", 3, 128, 128)  # one grey channel, replicated 3 times


def _base() -> dict[str, Any]:
    return _doc(EXAMPLES / "late-fusion.yaml")  # type: ignore[no-any-return]


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    *head, last = path.split(".")
    node: Any = out
    for part in head:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return out


_DELETE = object()

# (path to change, new value, text the error must name)
BAD = [
    ("inputs.0.preprocessing.replicat", 3, "inputs[0].preprocessing.replicat: unknown field"),
    ("inputs.0.preprocessing.size", [32, 64], "preprocessing.size"),
    ("inputs.0.preprocessing.geometry", "volumetric", "inputs[0].preprocessing.geometry"),
    ("inputs.0.preprocessing.replicate", 0, "preprocessing.replicate"),
    ("inputs.0.preprocessing.intensity.method", "zscore", "intensity.method"),
    ("inputs.0.preprocessing.intensity.std", [1.0, -1.0], "intensity.std"),
    ("inputs.0.preprocessing.selection", _DELETE, "inputs[0].preprocessing.selection"),
    ("inputs.2.scalar.parse", "years", "inputs[2].scalar.parse"),
    ("inputs.2.scalar.scale", 0, "scalar.scale"),
    ("inputs.2.scalar.source", "patient age", "scalar.source"),
    ("inputs.2.role", "covariate", "inputs[2].role"),
    ("outputs.0.kind", "detection", "outputs[0].kind"),
    ("outputs.0.shape", [2, 2], "outputs['diagnosis'].shape"),
    ("version", _DELETE, "model.version"),
    ("colour", "blue", "model.colour: unknown field"),
]


@pytest.mark.parametrize(("path", "value", "named"), BAD, ids=[b[0] + "" for b in BAD])
def test_bad_fields_are_named_and_the_schema_agrees(path: str, value: Any, named: str) -> None:
    doc = _set(_base(), path, value)
    with pytest.raises(SpecError) as info:
        spec_from_dict(doc)
    assert named in str(info.value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, spec_schema())


def test_a_segmentation_output_must_be_a_map(tmp_path: Path) -> None:
    doc = _doc(EXAMPLES / "ct-segmentation.json")
    doc["outputs"][0]["shape"] = ["batch", 2]
    with pytest.raises(SpecError, match=r"segmentation output is"):
        spec_from_dict(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, spec_schema())


def test_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "model.yaml"
    bad.write_text("name: x\ninputs: [\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"model.yaml: not valid YAML at line"):
        load_spec(bad)
    other = tmp_path / "model.toml"
    other.write_text("x = 1", encoding="utf-8")
    with pytest.raises(SpecError, match=r"\.json, \.yaml or \.yml"):
        load_spec(other)
    field = tmp_path / "model.json"
    field.write_text(json.dumps(_set(_base(), "inputs.0.preprocessing.size", [0, 1, 1])))
    with pytest.raises(SpecError, match=r"^model.json: model.inputs\[0\].preprocessing.size"):
        load_spec(field)


def test_builders_make_the_same_spec_as_the_file() -> None:
    built = model_spec(
        "late-fusion",
        "1.0",
        inputs=[
            ct_volume("ct", size=(32, 64, 64), windows=[(40, 400), (-600, 1500)]),
            radiograph("xray", size=(128, 128)),
            scalar("age", "PatientAge", parse="age", offset=50, scale=20, default=50),
            presence(),
        ],
        outputs=[classification("diagnosis", ["normal", "abnormal"])],
    )
    from_file = load_spec(EXAMPLES / "late-fusion.yaml")
    assert [i.sample_shape() for i in built.inputs] == [i.sample_shape() for i in from_file.inputs]
    assert built.input("age").scalar == from_file.input("age").scalar
    ct_b, ct_f = built.input("ct").preprocessing, from_file.input("ct").preprocessing
    assert ct_b is not None and ct_f is not None
    assert ct_b.intensity == ct_f.intensity and ct_b.size == ct_f.size


def test_builder_errors_are_spec_errors() -> None:
    with pytest.raises(SpecError, match=r"input 'xray'.*replicate"):
        radiograph("xray", replicate=0)
    with pytest.raises(SpecError, match=r"segmentation"):
        segmentation("mask", ["a", "b"], spatial=())
