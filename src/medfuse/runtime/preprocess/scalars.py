"""Scalar (non-image) inputs: one number per study from a DICOM attribute, normalised.

The value is read from the first instance of the first series that fed an image input (a
patient-level attribute such as PatientAge is the same across the study's series), parsed by
the input's :class:`~medfuse.bundle.spec.ScalarRecipe` and written into the model's buffer.
It is never logged and never written to a result: a missing or unparseable value becomes the
recipe's declared default and a ``scalar_default`` warning that names the attribute only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import InputSpec, ScalarRecipe
from medfuse.runtime.results.provenance import Notice

__all__ = ["fill_scalars", "parse_age", "read_scalar"]

logger = logging.getLogger(__name__)

_AGE_UNITS = {"Y": 1.0, "M": 1.0 / 12.0, "W": 7.0 / 365.25, "D": 1.0 / 365.25}


def parse_age(text: str) -> float | None:
    """A DICOM Age String (AS, PS3.5 6.2: ``nnnD|W|M|Y``) in years, or None if malformed."""
    text = text.strip()
    if len(text) != 4 or not text[:3].isdigit() or text[3] not in _AGE_UNITS:
        return None
    return int(text[:3]) * _AGE_UNITS[text[3]]


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        out = float(value)  # type: ignore[arg-type]  # DS / IS / int / float values
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def read_scalar(path: Path, recipe: ScalarRecipe) -> float | None:
    """The raw value of ``recipe.source`` in the file at ``path`` (source units), or None when
    the attribute is absent, empty, multi-valued or cannot be parsed."""
    import pydicom

    from medfuse.runtime.dicom._quiet import reading

    try:
        with reading():  # pydicom's warnings quote values (a patient's age, here)
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[recipe.source])
            value = ds.get(recipe.source)
    except Exception:  # an unreadable header is a missing value here; images report it
        return None
    if value is None or value == "" or isinstance(value, list | tuple):
        return None
    if recipe.parse == "age":
        return parse_age(str(value))
    return _number(value)


def fill_scalars(
    inputs: tuple[InputSpec, ...], source: Path | None, out: Mapping[str, NDArray[np.float32]]
) -> list[Notice]:
    """Write every scalar input's normalised value into its view (shape ``(1,)``); return a
    ``scalar_default`` notice for each input that fell back to its default."""
    notices: list[Notice] = []
    for inp in inputs:
        recipe = inp.scalar
        assert recipe is not None  # InputSpec guarantees it for scalar inputs
        raw = read_scalar(source, recipe) if source is not None else None
        if raw is None:
            raw = recipe.default
            notices.append(
                Notice(
                    "scalar_default",
                    f"input {inp.name}: {recipe.source} is missing or unreadable; the declared "
                    "default was used",
                    input=inp.name,
                )
            )
        out[inp.name][...] = np.float32(recipe.normalise(raw))
    return notices
