"""Where :func:`~medfuse.runtime.dicom.load_volume` gets headers and pixels from.

- :class:`FromDatasets` parses every file (``open_dataset`` → ``validate_image`` → ``decode``):
  the plain path, for any file.
- :class:`FromFacts` takes the headers from the instances' :class:`HeaderFacts` recorded at
  discovery and reads each file's bytes once, checking their digest; a mismatch raises
  :class:`StaleFacts` and the caller starts again with :class:`FromDatasets`.

Both write each frame as float32 modality values straight into its slot of the output volume.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medfuse.runtime.dicom._facts import NativeReader, rescale_of
from medfuse.runtime.dicom._read import decode, open_dataset, validate_image
from medfuse.runtime.dicom.geometry import (
    frame_orientation,
    frame_position,
    frame_spacing,
    slice_thickness,
)
from medfuse.runtime.dicom.processing import (
    F32,
    Array,
    Lut,
    Rescale,
    modality_transform,
    rescale_inplace,
)
from medfuse.runtime.dicom.study import Instance, Series

__all__ = [
    "FromDatasets",
    "FromFacts",
    "Orientation",
    "Position",
    "StaleFacts",
    "store_modality",
]

Position = tuple[float, float, float] | None
Orientation = tuple[float, ...] | None


class StaleFacts(Exception):
    """A file's bytes no longer match its header facts."""


class FromDatasets:
    """Headers and pixels from parsing every file (``open_dataset``, ``decode``)."""

    def __init__(self) -> None:
        self._datasets: list[Dataset | None] = []

    def shape(self, k: int, inst: Instance) -> tuple[int, int, int]:
        """(frames, rows, columns) of file ``k``; called once per file, in order."""
        ds = open_dataset(inst.path)
        self._datasets.append(ds)
        return validate_image(ds)

    def geometry(self, k: int, f: int) -> tuple[Position, Orientation]:
        """ImagePositionPatient and ImageOrientationPatient of frame ``f`` of file ``k``."""
        ds = self._datasets[k]
        assert ds is not None
        return frame_position(ds, f), frame_orientation(ds, f)

    def first_thickness(self) -> float | None:
        """The first file's slice spacing or thickness (used for a single slice)."""
        assert self._datasets[0] is not None
        return slice_thickness(self._datasets[0])

    def first_spacing(self) -> tuple[float, float] | None:
        """The first file's PixelSpacing (first frame)."""
        assert self._datasets[0] is not None
        return frame_spacing(self._datasets[0], 0)

    def fill(self, k: int, targets: list[tuple[int, Array]]) -> None:
        """Write frame ``f`` of file ``k`` as modality values into each ``(f, view)``."""
        ds = self._datasets[k]
        assert ds is not None
        raw = decode(ds)
        per_frame = "PerFrameFunctionalGroupsSequence" in ds
        shared = None if per_frame else modality_transform(ds, 0)
        for f, view in targets:
            store_modality(view, raw[f], modality_transform(ds, f) if per_frame else shared)
        self._datasets[k] = None  # release the encoded pixels as we go


class FromFacts:
    """Headers from the instances' facts; pixels read from the files with their digest checked.

    Every instance has facts (no per-frame functional groups), so each frame has the
    geometry of the instance's first frame.
    """

    def __init__(self, series: Series) -> None:
        self._instances = series.instances
        self._reader = NativeReader()

    def shape(self, k: int, inst: Instance) -> tuple[int, int, int]:
        return inst.frames, inst.rows, inst.columns

    def geometry(self, k: int, f: int) -> tuple[Position, Orientation]:
        inst = self._instances[k]
        return inst.position, inst.orientation

    def first_thickness(self) -> float | None:
        # rarely needed (one slice, or no positions): not worth a fact for every file
        return slice_thickness(open_dataset(self._instances[0].path, headers_only=True))

    def first_spacing(self) -> tuple[float, float] | None:
        return self._instances[0].pixel_spacing

    def fill(self, k: int, targets: list[tuple[int, Array]]) -> None:
        inst = self._instances[k]
        raw = self._reader.read(inst)
        if raw is None or inst.facts is None:
            raise StaleFacts
        rescale = rescale_of(inst.facts)
        for f, view in targets:
            store_modality(view, raw[f], rescale)


def store_modality(view: Array, raw: NDArray[Any], t: Rescale | Lut | None) -> None:
    """Write stored values ``raw`` into float32 ``view`` as modality values.

    A rescale is fused with the conversion to float32 (the same float32 operations, one
    pass fewer); a LUT is looked up after the conversion.
    """
    if isinstance(t, Rescale) and t.slope != 1.0:
        np.multiply(raw, F32(t.slope), out=view, dtype=F32)
        if t.intercept != 0.0:
            np.add(view, F32(t.intercept), out=view)
        return
    if isinstance(t, Rescale) and t.intercept != 0.0:
        np.add(raw, F32(t.intercept), out=view, dtype=F32)
        return
    view[...] = raw  # cast to native float32
    res = rescale_inplace(view, t)
    if res is not view:
        view[...] = res
