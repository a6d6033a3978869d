"""manifest.json: round trip, a bad field is named, unknown fields survive, schema versions."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from helpers.onnx_bundles import tiny_spec
from medfuse.bundle import SCHEMA_VERSION, EngineRecord, Manifest, Provenance, Variant
from medfuse.errors import IncompatibleBundleError, ManifestError

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def _doc() -> dict[str, Any]:
    """A valid manifest document, written by hand (not by the code under test)."""
    engine = {
        "file": "engines/orin-trt10.3-fp32.plan",
        "sha256": SHA_C,
        "variant": "fp32",
        "tensorrt_version": "10.3.0",
        "gpu_name": "Orin",
        "compute_capability": "8.7",
        "dla_core": None,
        "profile": {"ct": {"min": [1], "opt": [1], "max": [4]}},
        "builder_optimization_level": 3,
        "version_compatible": False,
        "cuda_version": "12.6",
        "driver_version": "540.4.0",
        "jetpack": "6.2",
        "built_at": "2026-11-24T00:00:00+00:00",
    }
    return {
        "schema_version": 1,
        "model": tiny_spec().to_dict(),
        "variants": {
            "fp32": {
                "file": "model.fp32.onnx",
                "sha256": SHA_A,
                "accuracy": {"top1_agreement": 1.0},
                "calibration": None,
            }
        },
        "engines": {"orin-trt10.3-fp32": engine},
        "artifacts": {
            "model.fp32.onnx": SHA_A,
            "golden.npz": SHA_B,
            "engines/orin-trt10.3-fp32.plan": SHA_C,
        },
        "provenance": {
            "medfuse_version": "0.1.0",
            "created_at": "2026-11-24T00:00:00+00:00",
            "torch_version": "2.13.0",
            "onnx_version": "1.17.0",
            "opset": 18,
            "training_config_hash": None,
        },
    }


def test_round_trip_through_json() -> None:
    m = Manifest.from_json(json.dumps(_doc()))
    assert m.schema_version == SCHEMA_VERSION == 1
    assert m.model == tiny_spec()
    assert m.variants["fp32"] == Variant("fp32", "model.fp32.onnx", SHA_A, {"top1_agreement": 1.0})
    engine = m.engines["orin-trt10.3-fp32"]
    assert isinstance(engine, EngineRecord)
    assert (engine.compute_capability, engine.jetpack, engine.dla_core) == ("8.7", "6.2", None)
    assert m.provenance == Provenance("0.1.0", "2026-11-24T00:00:00+00:00", "2.13.0", "1.17.0", 18)
    assert json.loads(m.to_json()) == _doc()


def test_manifest_is_frozen() -> None:
    m = Manifest.from_dict(_doc())
    with pytest.raises(AttributeError):
        m.schema_version = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.variants["int8"] = m.variants["fp32"]  # type: ignore[index]


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = doc
    for p in path[:-1]:
        node = node[p]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()
_ENGINE = ("engines", "orin-trt10.3-fp32")


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        # wrong type
        (("schema_version",), "1", "schema_version: expected int"),
        (("variants", "fp32", "sha256"), 5, "variants['fp32'].sha256"),
        (("variants", "fp32", "accuracy"), [1, 2], "variants['fp32'].accuracy"),
        ((*_ENGINE, "dla_core"), "0", "engines['orin-trt10.3-fp32'].dla_core"),
        ((*_ENGINE, "version_compatible"), "yes", "version_compatible"),
        (("provenance", "opset"), 18.5, "provenance.opset"),
        (
            ("model", "inputs", 0, "preprocessing", "selection", "min_frames"),
            "four",
            "model.inputs[0].preprocessing.selection.min_frames",
        ),
        (("model", "outputs", 0, "labels"), 3, "model.outputs[0].labels"),
        (("variants",), [], "manifest.variants: expected an object"),
        # missing required
        (("variants", "fp32", "file"), _DELETE, "variants['fp32'].file: required field is missing"),
        (("provenance", "created_at"), _DELETE, "provenance.created_at: required field"),
        (("artifacts",), _DELETE, "manifest.artifacts: required field"),
        ((*_ENGINE, "tensorrt_version"), _DELETE, "tensorrt_version: required field"),
        (
            ("model", "inputs", 0, "preprocessing", "intensity"),
            _DELETE,
            "model.inputs[0].preprocessing.intensity: required",
        ),
        # out of its set
        (("model", "outputs", 1, "activation"), "relu", "model.outputs[1].activation"),
        (("model", "inputs", 0, "role"), "video", "model.inputs[0].role"),
        (("variants", "fp64"), {"file": "m.onnx", "sha256": SHA_A}, "'fp64' is not a precision"),
        ((*_ENGINE, "compute_capability"), "sm87", "compute_capability: 'sm87'"),
        ((*_ENGINE, "variant"), "int8", "variant: 'int8' is not a variant of this bundle"),
        ((*_ENGINE, "builder_optimization_level"), 9, "builder_optimization_level: 9"),
        (("artifacts", "golden.npz"), "XYZ", "artifacts['golden.npz']"),
        # inconsistent
        (("artifacts", "model.fp32.onnx"), SHA_B, "variants['fp32'].sha256: differs"),
    ],
)
def test_bad_field_is_named(path: tuple[Any, ...], value: Any, named: str) -> None:
    doc = _doc()
    _set(doc, path, value)
    with pytest.raises(ManifestError) as info:
        Manifest.from_dict(doc)
    assert named in str(info.value)


def test_not_json_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_json('{"schema_version": 1,')


@pytest.mark.parametrize(
    ("path", "rel"),
    [
        (("variants", "fp32", "file"), "../outside.onnx"),
        (("variants", "fp32", "file"), "/etc/passwd"),
        (("variants", "fp32", "file"), "sub/../../x.onnx"),
        (("variants", "fp32", "file"), "C:\\model.onnx"),
        ((*_ENGINE, "file"), "engines/../../x.plan"),
    ],
)
def test_paths_must_stay_inside_the_bundle(path: tuple[Any, ...], rel: str) -> None:
    doc = _doc()
    _set(doc, path, rel)
    with pytest.raises(ManifestError, match="not allowed"):
        Manifest.from_dict(doc)


def test_artifact_key_outside_the_bundle_is_rejected() -> None:
    doc = _doc()
    doc["artifacts"]["../../home/x"] = SHA_A
    with pytest.raises(ManifestError, match=r"artifacts: '\.\./\.\./home/x' is not allowed"):
        Manifest.from_dict(doc)


def test_unknown_fields_are_kept_and_written_back() -> None:
    doc = _doc()
    doc["future_top"] = {"anything": [1, 2, 3]}
    doc["variants"]["fp32"]["sparsity"] = 0.5
    doc["engines"]["orin-trt10.3-fp32"]["tactic_sources"] = ["cublas"]
    doc["provenance"]["builder_host"] = "ci-7"
    m = Manifest.from_dict(copy.deepcopy(doc))
    assert m.extra == {"future_top": {"anything": [1, 2, 3]}}
    assert m.variants["fp32"].extra == {"sparsity": 0.5}
    assert m.engines["orin-trt10.3-fp32"].extra == {"tactic_sources": ["cublas"]}
    assert m.provenance.extra == {"builder_host": "ci-7"}
    assert m.to_dict() == doc


def test_newer_schema_is_incompatible_and_says_what_to_install() -> None:
    doc = _doc()
    doc["schema_version"] = 2
    doc["provenance"]["medfuse_version"] = "0.4.0"
    doc["variants"] = "a field this medfuse cannot read"
    with pytest.raises(IncompatibleBundleError, match=r"schema 2.*medfuse>=0\.4\.0"):
        Manifest.from_dict(doc)


@pytest.mark.parametrize("version", [0, _DELETE])
def test_older_or_missing_schema_is_a_manifest_error(version: Any) -> None:
    doc = _doc()
    _set(doc, ("schema_version",), version)
    with pytest.raises(ManifestError, match="schema_version"):
        Manifest.from_dict(doc)


def test_engine_record_for_update_may_leave_file_and_hash_empty() -> None:
    record = EngineRecord(
        key="k1",
        variant="fp16",
        tensorrt_version="10.3.0",
        gpu_name="Orin",
        compute_capability="8.7",
    )
    assert record.file == "" and record.sha256 == ""
    with pytest.raises(ManifestError, match="compute_capability"):
        EngineRecord(
            key="k1",
            variant="fp16",
            tensorrt_version="10.3.0",
            gpu_name="Orin",
            compute_capability="87",
        )
    with pytest.raises(ManifestError, match="engine key"):
        EngineRecord(
            key="../k",
            variant="fp16",
            tensorrt_version="10.3.0",
            gpu_name="Orin",
            compute_capability="8.7",
        )
