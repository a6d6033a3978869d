"""Series → arrays with geometry: 3-D volumes (CT/MR) and 2-D images (CR/DX).

Values are *modality values* (HU for CT), float32. Slices are sorted by their position
projected on the orientation normal (PS3.3 C.7.6.2.1.1), never by InstanceNumber; the slice
spacing comes from those positions, the in-plane spacing from PixelSpacing — never silently
from ImagerPixelSpacing (that one is exposed separately on :class:`Image2D`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from medfuse.errors import CorruptDicomError, DicomError
from medfuse.runtime.dicom._quiet import quiet_pydicom
from medfuse.runtime.dicom._read import decode, guarded, open_dataset
from medfuse.runtime.dicom._sources import (
    FromDatasets,
    FromFacts,
    Orientation,
    Position,
    StaleFacts,
)
from medfuse.runtime.dicom.consistency import order_slices
from medfuse.runtime.dicom.frames import modality_frames
from medfuse.runtime.dicom.geometry import (
    frame_spacing,
    imager_spacing,
)
from medfuse.runtime.dicom.processing import (
    F32,
    Array,
    VoiLut,
    VoiWindow,
    is_inverted,
    minmax_inplace,
    select_voi,
    voi_inplace,
    voi_transforms,
)
from medfuse.runtime.dicom.study import Series

__all__ = ["Image2D", "Volume", "load_image", "load_volume"]

logger = logging.getLogger(__name__)



@dataclass(frozen=True, eq=False)
class Volume:
    """A 3-D series as modality values.

    Attributes
    ----------
    values:
        float32 ``(depth, rows, cols)``, modality values (HU for CT), slices in increasing
        position along the normal ``row cosines × column cosines``.
    spacing:
        ``(dz, dy, dx)`` in mm: dz the median distance between sorted slice positions, dy/dx
        from PixelSpacing. A component that is unknown is 1.0 and ``geometry_known`` is False.
    origin:
        ImagePositionPatient of the first slice (mm, LPS), or None.
    orientation:
        ImageOrientationPatient (6 direction cosines), or None.
    geometry_known:
        Positions, orientation and PixelSpacing were all present; when False the slices are in
        InstanceNumber order and missing spacings are 1.0.
    modality:
        The series' Modality (``"CT"``, ``"MR"``...).
    notes:
        What was degraded, as codes for the result's warnings: ``geometry_unknown`` (slices
        ordered by InstanceNumber, or spacing 1.0 assumed), ``uneven_spacing`` (slice spacing
        varies by more than 10 %).
    """

    values: NDArray[np.float32] = field(repr=False)
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] | None = field(default=None, repr=False)
    orientation: tuple[float, ...] | None = None
    geometry_known: bool = True
    modality: str = ""
    notes: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        d, h, w = self.values.shape
        return (d, h, w)


@dataclass(frozen=True, eq=False)
class Image2D:
    """A 2-D image (first frame of the series' first instance) as modality values.

    Attributes
    ----------
    values:
        float32 ``(rows, cols)`` modality values.
    spacing:
        ``(dy, dx)`` in mm from PixelSpacing (calibrated, in the patient), or None when absent
        or invalid (e.g. ``[0, 0]``). Never taken from ImagerPixelSpacing.
    imager_spacing:
        ``(dy, dx)`` from ImagerPixelSpacing (detector plane, magnified), or None.
    inverted:
        MONOCHROME1 or PresentationLUTShape INVERSE: VOI output must be flipped.
    vois:
        The file's VOIs (windows, then VOI LUTs) in ``voi_index`` order.
    modality:
        The series' Modality.
    """

    values: NDArray[np.float32] = field(repr=False)
    spacing: tuple[float, float] | None
    imager_spacing: tuple[float, float] | None = None
    inverted: bool = False
    vois: tuple[VoiWindow | VoiLut, ...] = field(default=(), repr=False)
    modality: str = ""

    def display(self, voi_index: int = 0) -> NDArray[np.float32]:
        """P-values in [0, 1] as :func:`~medfuse.runtime.dicom.read_frames` computes them.

        The file's VOI number ``voi_index`` (min–max when the file has none), then polarity.
        Returns a new float32 ``(rows, cols)`` array.
        """
        x = self.values.copy()
        x = (
            voi_inplace(x, select_voi(list(self.vois), voi_index))
            if self.vois
            else minmax_inplace(x)
        )
        if self.inverted:
            np.subtract(F32(1.0), x, out=x)
        return x


def load_volume(series: Series) -> Volume:
    """Read a series (single-frame slices or enhanced multi-frame) as a sorted 3-D volume.

    Each file is read and decoded once; frames are written straight into the output array.
    When every instance carries :class:`~medfuse.runtime.dicom.study.HeaderFacts` from
    discovery (plain uncompressed files), no header is parsed again: the geometry comes from
    the instances and each file's bytes are read once, their digest checked, and the pixel
    values converted in place. If any file changed since discovery, or the series turns out to
    be unusable, the files are parsed as without facts, so the result or error is the same.

    Parameters
    ----------
    series:
        A series from :func:`~medfuse.runtime.dicom.discover_studies`.

    Returns
    -------
    Volume
        Modality values ``(depth, rows, cols)`` sorted along the slice normal, with spacing.

    Raises
    ------
    CorruptDicomError
        Empty series; :class:`~medfuse.errors.InconsistentSeriesError` for slices of different
        sizes or orientations or two slices at one position; pixel data of the wrong length.
    NotDicomError, UnsupportedDicomError
        As :func:`~medfuse.runtime.dicom.read_frames`.
    """
    quiet_pydicom()
    with guarded():
        return _load_volume(series)


def _load_volume(series: Series) -> Volume:
    if not series.instances:
        raise CorruptDicomError("the series has no image files; pick a series with images")
    # a file changed since discovery is caught by the read (its size and digest are checked)
    if all(inst.facts is not None for inst in series.instances):
        try:
            return _assemble(series, FromFacts(series))
        except (StaleFacts, DicomError):
            # a file changed since discovery, or the series is bad: parse every header, so the
            # result or the error is exactly what it is without facts
            logger.debug("reading the series with its header facts failed; parsing its files")
    return _assemble(series, FromDatasets())


def _assemble(series: Series, source: FromDatasets | FromFacts) -> Volume:
    """Geometry (sort, spacing, checks) from ``source``'s headers, then its pixels, in order."""
    t0 = time.perf_counter()
    frames_of: list[tuple[int, int]] = []  # (file index, frame index) per slice
    sizes: list[tuple[int, int]] = []
    positions: list[Position] = []
    orientations: list[Orientation] = []
    numbers: list[int] = []
    for k, inst in enumerate(series.instances):
        n, rows, cols = source.shape(k, inst)
        number = inst.instance_number if inst.instance_number is not None else k
        for f in range(n):
            frames_of.append((k, f))
            sizes.append((rows, cols))
            position, orientation = source.geometry(k, f)
            positions.append(position)
            orientations.append(orientation)
            numbers.append(number * 100_000 + f)
    slices = order_slices(sizes, positions, orientations, numbers)
    depth, size = len(frames_of), sizes[0]
    notes: list[str] = []
    if not slices.known:
        notes.append("geometry_unknown")
    if slices.uneven:
        notes.append("uneven_spacing")
    dz = slices.dz if slices.dz is not None else (source.first_thickness() or 1.0)
    pixel = source.first_spacing()
    dy, dx = pixel if pixel is not None else (1.0, 1.0)
    if pixel is None and "geometry_unknown" not in notes:
        notes.append("geometry_unknown")

    out = np.empty((depth, *size), dtype=F32)
    slot = np.empty(depth, dtype=np.intp)
    slot[slices.order] = np.arange(depth)
    by_file: dict[int, list[tuple[int, Array]]] = {}
    for i, (k, f) in enumerate(frames_of):
        by_file.setdefault(k, []).append((f, out[int(slot[i])]))
    for k in range(len(series.instances)):
        source.fill(k, by_file[k])
    first_pos = positions[int(slices.order[0])] if slices.known else None
    logger.debug(
        "volume %dx%dx%d, spacing %.3g/%.3g/%.3g mm, %d files in %.1f ms (%s)",
        depth,
        size[0],
        size[1],
        dz,
        dy,
        dx,
        len(series.instances),
        (time.perf_counter() - t0) * 1e3,
        "header facts" if isinstance(source, FromFacts) else "headers parsed",
    )
    return Volume(
        values=out,
        spacing=(dz, dy, dx),
        origin=first_pos,
        orientation=orientations[0] if slices.known else None,
        geometry_known=slices.known and pixel is not None,
        modality=series.modality,
        notes=tuple(notes),
    )


def load_image(series: Series) -> Image2D:
    """Read the first frame of the series' first file as a 2-D image (CR, DX, MG, ...).

    Parameters
    ----------
    series:
        A series from :func:`~medfuse.runtime.dicom.discover_studies`.

    Returns
    -------
    Image2D
        Modality values ``(rows, cols)``, PixelSpacing (or None) and, separately,
        ImagerPixelSpacing; polarity and the file's VOIs for :meth:`Image2D.display`.
    """
    quiet_pydicom()
    if not series.instances:
        raise CorruptDicomError("the series has no image files; pick a series with images")
    with guarded():
        return _load_image(series)


def _load_image(series: Series) -> Image2D:
    ds = open_dataset(series.instances[0].path)
    raw = decode(ds)
    x = modality_frames(ds, raw[:1])
    return Image2D(
        values=x[0],
        spacing=frame_spacing(ds, 0),
        imager_spacing=imager_spacing(ds),
        inverted=is_inverted(ds),
        vois=tuple(voi_transforms(ds, 0)),
        modality=series.modality,
    )
