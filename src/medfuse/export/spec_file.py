"""Spec files: a model's inputs and outputs as YAML or JSON, checked field by field.

A spec file holds the same object as a bundle manifest's ``model`` section (see
:class:`~medfuse.bundle.spec.ModelSpec` and ``medfuse/data/spec.schema.json``), with two
conveniences: an image input may leave out ``shape`` (it follows from its recipe) and the
presence input may leave out ``shape`` (one column per image input). Unknown fields are
errors, so a typo never silently becomes a default.

Every error is a :class:`~medfuse.errors.SpecError` naming the file, the path to the bad field
(``model.inputs[0].preprocessing.size``) and what would work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import medfuse
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
from medfuse.errors import ManifestError, MissingDependencyError, SpecError

__all__ = ["SPEC_SCHEMA", "load_spec", "spec_from_dict", "spec_schema"]

SPEC_SCHEMA = "spec.schema.json"
"""File name of the published JSON Schema in ``medfuse/data``."""

_MAX_BYTES = 1 << 20


def spec_schema() -> dict[str, Any]:
    """The published JSON Schema of spec files (``medfuse/data/spec.schema.json``)."""
    text = (Path(medfuse.__file__).parent / "data" / SPEC_SCHEMA).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def _unknown(d: Any, allowed: set[str], where: str) -> None:
    """Raise on a key of ``d`` that no field of the target class has."""
    if not isinstance(d, Mapping):
        return  # the dataclass parser reports the wrong type with the same path
    extra = sorted(str(k) for k in d if k not in allowed)
    if extra:
        raise ManifestError(
            f"{where}.{extra[0]}: unknown field; known fields are {', '.join(sorted(allowed))}"
        )


def _check_fields(doc: Mapping[str, Any], where: str) -> None:
    """Refuse unknown keys everywhere below ``doc`` (``extra`` is free-form)."""
    _unknown(doc, _names(ModelSpec), where)
    for key, cls in (("inputs", InputSpec), ("outputs", OutputSpec)):
        items = doc.get(key)
        for i, item in enumerate(items if isinstance(items, list) else []):
            at = f"{where}.{key}[{i}]"
            _unknown(item, _names(cls), at)
            if not isinstance(item, Mapping):
                continue
            scalar = item.get("scalar")
            _unknown(scalar, _names(ScalarRecipe), f"{at}.scalar")
            pre = item.get("preprocessing")
            _unknown(pre, _names(PreprocessRecipe), f"{at}.preprocessing")
            if not isinstance(pre, Mapping):
                continue
            _unknown(pre.get("selection"), _names(SeriesSelection), f"{at}.preprocessing.selection")
            intensity = pre.get("intensity")
            _unknown(intensity, _names(IntensityRecipe), f"{at}.preprocessing.intensity")
            if isinstance(intensity, Mapping) and isinstance(intensity.get("windows"), list):
                for j, w in enumerate(intensity["windows"]):
                    _unknown(w, _names(Window), f"{at}.preprocessing.intensity.windows[{j}]")


def _fill_shapes(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A copy of ``doc`` with the shapes an image or presence input may leave out."""
    out = dict(doc)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list):
        return out
    filled: list[Any] = []
    for i, item in enumerate(inputs):
        if isinstance(item, Mapping) and "shape" not in item:
            item = dict(item)
            role = item.get("role", "image")
            if role == "image" and isinstance(item.get("preprocessing"), Mapping):
                pre = PreprocessRecipe.from_dict(
                    item["preprocessing"], f"{where}.inputs[{i}].preprocessing"
                )
                item["shape"] = [BATCH, *pre.tensor_shape]
            elif role == "presence":
                k = sum(
                    1
                    for x in inputs
                    if isinstance(x, Mapping) and x.get("role", "image") == "image"
                )
                item["shape"] = [BATCH, k]
            elif role == "scalar":
                item["shape"] = [BATCH, 1]
        filled.append(item)
    out["inputs"] = filled
    return out


def spec_from_dict(doc: Any, *, where: str = "model") -> ModelSpec:
    """A :class:`ModelSpec` from a parsed spec file, every field checked.

    Raises
    ------
    SpecError
        With the path to the first bad field and what would work.
    """
    if not isinstance(doc, Mapping):
        raise SpecError(f"{where}: a spec is an object with name, version, inputs, outputs")
    try:
        _check_fields(doc, where)
        return ModelSpec.from_dict(_fill_shapes(doc, where), where)
    except ManifestError as exc:
        raise SpecError(str(exc)) from None


def load_spec(path: str | Path) -> ModelSpec:
    """Read a spec file (``.json``, or ``.yaml`` / ``.yml`` with PyYAML installed).

    Raises
    ------
    SpecError
        The file cannot be read or parsed, or a field is invalid (the message names the file
        and the field).
    """
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise SpecError(f"{path.name}: a spec file is at most {_MAX_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path.name}: cannot read the spec file ({type(exc).__name__})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise MissingDependencyError(
                f"{path.name}: YAML spec files need PyYAML (pip install 'medfuse[export]'); "
                "or write the spec as JSON"
            ) from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            raise SpecError(f"{path.name}: not valid YAML{at}") from None
    elif path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(
                f"{path.name}: not valid JSON at line {exc.lineno}: {exc.msg}"
            ) from None
    else:
        raise SpecError(f"{path.name}: a spec file ends in .json, .yaml or .yml")
    try:
        return spec_from_dict(doc)
    except SpecError as exc:
        raise SpecError(f"{path.name}: {exc}") from None
