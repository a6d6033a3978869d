"""Patient-space geometry from a header: position, orientation, spacing (PS3.3 C.7.6.2).

Enhanced multi-frame objects keep these in functional groups (PlanePositionSequence,
PlaneOrientationSequence, PixelMeasuresSequence, PS3.3 C.7.6.16.2); other objects at the top
level. Invalid values (text, wrong count, non-positive spacing) read as ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

__all__ = [
    "fg_item",
    "frame_orientation",
    "frame_position",
    "frame_spacing",
    "imager_spacing",
    "slice_normal",
]


def _numbers(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None or isinstance(value, str | bytes):
        return None
    values = list(value) if isinstance(value, Sequence) else [value]
    if len(values) != n:
        return None
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def fg_item(ds: Dataset, frame: int, keyword: str) -> Dataset | None:
    """The first item of functional group ``keyword`` for ``frame`` (per-frame, then shared)."""
    for tag, seq_kw, idx in (
        (0x52009230, "PerFrameFunctionalGroupsSequence", frame),
        (0x52009229, "SharedFunctionalGroupsSequence", 0),
    ):
        if tag not in ds:  # usually absent; a tag lookup is far cheaper than a keyword one
            continue
        seq = ds.get(seq_kw)
        if seq and idx < len(seq):
            group = seq[idx].get(keyword)
            if group:
                item: Dataset = group[0]
                return item
    return None


def frame_position(ds: Dataset, frame: int = 0) -> tuple[float, float, float] | None:
    """ImagePositionPatient of ``frame`` (mm, LPS): PlanePositionSequence, else top level."""
    item = fg_item(ds, frame, "PlanePositionSequence")
    value = (item if item is not None else ds).get("ImagePositionPatient")
    pos = _numbers(value, 3)
    return None if pos is None else (pos[0], pos[1], pos[2])


def frame_orientation(ds: Dataset, frame: int = 0) -> tuple[float, ...] | None:
    """ImageOrientationPatient of ``frame`` (row then column direction cosines)."""
    item = fg_item(ds, frame, "PlaneOrientationSequence")
    value = (item if item is not None else ds).get("ImageOrientationPatient")
    iop = _numbers(value, 6)
    if iop is None or not (0.5 < math.hypot(*iop[:3]) < 1.5 and 0.5 < math.hypot(*iop[3:]) < 1.5):
        return None
    return iop


def _spacing(value: Any) -> tuple[float, float] | None:
    sp = _numbers(value, 2)
    if sp is None or sp[0] <= 0 or sp[1] <= 0:
        return None  # e.g. RG1_* carry PixelSpacing [0, 0]
    return (sp[0], sp[1])


def frame_spacing(ds: Dataset, frame: int = 0) -> tuple[float, float] | None:
    """PixelSpacing (row spacing, column spacing) in mm in the patient, never ImagerPixelSpacing."""
    item = fg_item(ds, frame, "PixelMeasuresSequence")
    return _spacing((item if item is not None else ds).get("PixelSpacing"))


def imager_spacing(ds: Dataset) -> tuple[float, float] | None:
    """ImagerPixelSpacing (0018,1164): at the detector plane, magnified relative to the patient."""
    return _spacing(ds.get("ImagerPixelSpacing"))


def slice_thickness(ds: Dataset, frame: int = 0) -> float | None:
    """SpacingBetweenSlices, else SliceThickness (mm), positive, or None."""
    item = fg_item(ds, frame, "PixelMeasuresSequence")
    for src in (item, ds):
        if src is None:
            continue
        for kw in ("SpacingBetweenSlices", "SliceThickness"):
            v = _numbers(src.get(kw), 1)
            if v is not None and v[0] > 0:
                return v[0]
    return None


def slice_normal(orientation: Sequence[float]) -> NDArray[np.float64]:
    """Unit normal of the image plane: row cosines × column cosines (PS3.3 C.7.6.2.1.1)."""
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:6], dtype=np.float64)
    n = np.cross(row, col)
    norm = float(np.linalg.norm(n))
    return n / norm if norm > 0 else np.array([0.0, 0.0, 1.0])
