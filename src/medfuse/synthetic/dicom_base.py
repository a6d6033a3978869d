"""Common DICOM building blocks for the synthetic writers: UIDs, modules shared by all IODs, saving.

Every value derives from the cohort seed, so the same seed writes byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from medfuse.synthetic.identity import Identity

__all__ = [
    "Equipment",
    "SeriesContext",
    "UidSource",
    "ds_str",
    "ds_strs",
    "instance",
    "save",
    "series_template",
    "set_pixel_data",
    "set_pixel_format",
]


class UidSource:
    """Deterministic UIDs under pydicom's prefix, derived from (seed, patient, purpose)."""

    def __init__(self, seed: int, index: int) -> None:
        self._parts = ["medfuse-synthetic", str(seed), str(index)]

    def __call__(self, *purpose: str | int) -> UID:
        """The UID for ``purpose`` (e.g. ``("CT", "series")`` or ``("CT", 12)``)."""
        return generate_uid(entropy_srcs=[*self._parts, *(str(p) for p in purpose)])


@dataclass(frozen=True)
class Equipment:
    """The scanner that 'acquired' a series."""

    manufacturer: str
    model: str
    station: str
    serial: str
    software: str


@dataclass(frozen=True)
class SeriesContext:
    """Everything one series' instances share."""

    identity: Identity
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str | None
    sop_class_uid: str
    modality: str
    series_number: int
    series_description: str
    equipment: Equipment
    series_time: str
    transfer_syntax: str  # ExplicitVRLittleEndian, ImplicitVRLittleEndian or RLELossless


def ds_str(value: float) -> str:
    """A decimal string of at most 16 characters (DS), without ``-0`` or tiny float noise."""
    v = round(float(value), 8) + 0.0
    text = f"{v:.10g}"
    return text if len(text) <= 16 else f"{v:.6g}"


def ds_strs(values: Sequence[float] | NDArray[np.float64]) -> list[str]:
    """:func:`ds_str` for each value (for multi-valued DS attributes)."""
    return [ds_str(float(v)) for v in values]


def series_template(ctx: SeriesContext) -> Dataset:
    """The elements every instance of a series shares: Patient, General Study, General Series,
    General Equipment, General Image, SOP Common and (for CT/MR) Frame of Reference modules."""
    ident = ctx.identity
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = ctx.sop_class_uid
    ds.InstanceCreationDate = ident.study_date
    ds.StudyDate = ident.study_date
    ds.SeriesDate = ident.study_date
    ds.ContentDate = ident.study_date
    ds.StudyTime = ident.study_time
    ds.SeriesTime = ctx.series_time
    ds.ContentTime = ctx.series_time
    ds.AccessionNumber = ident.accession
    ds.Modality = ctx.modality
    ds.Manufacturer = ctx.equipment.manufacturer
    ds.InstitutionName = ident.institution
    ds.ReferringPhysicianName = ident.referring
    ds.StationName = ctx.equipment.station
    ds.StudyDescription = ident.study_description
    ds.SeriesDescription = ctx.series_description
    ds.OperatorsName = ident.operator
    ds.ManufacturerModelName = ctx.equipment.model
    ds.PatientName = ident.patient_name
    ds.PatientID = ident.patient_id
    ds.PatientBirthDate = ident.birth_date
    ds.PatientSex = ident.sex
    ds.PatientAge = ident.age
    ds.BodyPartExamined = "ABDOMEN"
    ds.DeviceSerialNumber = ctx.equipment.serial
    ds.SoftwareVersions = ctx.equipment.software
    ds.StudyInstanceUID = ctx.study_uid
    ds.SeriesInstanceUID = ctx.series_uid
    ds.StudyID = ident.study_id
    ds.SeriesNumber = ctx.series_number
    ds.AcquisitionNumber = 1
    if ctx.frame_of_reference_uid is not None:
        ds.FrameOfReferenceUID = ctx.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
    return ds


def instance(template: Dataset, ctx: SeriesContext, sop_instance_uid: str, number: int) -> Dataset:
    """A new dataset holding ``template``'s elements plus this instance's UID, number and meta."""
    ds = Dataset(dict(template._dict))  # shares the template's elements; none is mutated
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ctx.sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = (
        ExplicitVRLittleEndian if ctx.transfer_syntax == RLELossless else UID(ctx.transfer_syntax)
    )
    ds.file_meta = meta
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceNumber = number
    return ds


def set_pixel_format(ds: Dataset, shape: tuple[int, ...], bits_stored: int, signed: bool) -> None:
    """The Image Pixel module's format elements for grayscale 16-bit frames."""
    ds.SamplesPerPixel = 1
    ds.Rows, ds.Columns = int(shape[-2]), int(shape[-1])
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0


def set_pixel_data(ds: Dataset, arr: NDArray[np.integer]) -> None:
    """PixelData of one frame, little-endian."""
    ds.PixelData = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()


def save(ds: Dataset, path: Path, arr: NDArray[np.integer], transfer_syntax: str) -> None:
    """Write ``ds`` as a DICOM file, RLE-compressing ``arr`` first when asked."""
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless, arr, generate_instance_uid=False)
    elif transfer_syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
