"""Output units: which model outputs are in which unit, and the one conversion to it.

A model may emit a value on a transformed scale (the reference model's ``severity`` is
``log1p`` of the lesion burden in mL, which trains better than mL). What people read is the
unit: every place that shows or stores such a value converts it here, with
:meth:`OutputUnit.convert` (tables, results JSONL / CSV, the demo, the accuracy gate, metrics).

The spec says it in ``extra``, either generally::

    "output_units": {"severity": {"unit": "mL", "transform": "log1p"}}

or with the reference model's older key ``"severity_transform": "log1p_ml"`` (read as the
line above). ``transform`` is ``"log1p"`` (unit = ``max(0, expm1(value))``: a volume is never
negative) or ``"identity"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["OutputUnit", "output_units"]

_TRANSFORMS = ("log1p", "identity")


@dataclass(frozen=True)
class OutputUnit:
    """The unit of one output and how its model value maps to it."""

    unit: str
    transform: str = "identity"

    @property
    def suffix(self) -> str:
        """The unit as a name suffix: ``mL`` → ``ml`` (``severity_ml``)."""
        return re.sub(r"[^a-z0-9]+", "_", self.unit.lower()).strip("_") or "unit"

    def column(self, name: str) -> str:
        """The name of output ``name`` in this unit, e.g. ``severity_ml``."""
        return f"{name}_{self.suffix}"

    def convert(self, value: float | None) -> float | None:
        """A model value in this unit (``None`` and non-finite values stay ``None``)."""
        if value is None or not math.isfinite(value):
            return None
        if self.transform == "log1p":
            return max(0.0, math.expm1(value))
        return float(value)

    def convert_array(self, values: NDArray[Any]) -> NDArray[np.float64]:
        """:meth:`convert` over an array (float64)."""
        arr = np.asarray(values, dtype=np.float64)
        if self.transform == "log1p":
            return np.clip(np.expm1(arr), 0.0, None)
        return arr

    def to_dict(self) -> dict[str, str]:
        return {"unit": self.unit, "transform": self.transform}


def output_units(extra: Mapping[str, Any] | None) -> dict[str, OutputUnit]:
    """Output name → its unit, from a spec's ``extra`` (see the module doc); unknown
    transforms are ignored (the value is then shown as the model gives it)."""
    extra = extra or {}
    out: dict[str, OutputUnit] = {}
    if extra.get("severity_transform") == "log1p_ml":
        out["severity"] = OutputUnit("mL", "log1p")
    units = extra.get("output_units")
    if isinstance(units, Mapping):
        for name, d in units.items():
            if not isinstance(d, Mapping) or not isinstance(d.get("unit"), str):
                continue
            transform = str(d.get("transform", "identity"))
            if transform in _TRANSFORMS:
                out[str(name)] = OutputUnit(d["unit"], transform)
    return out
