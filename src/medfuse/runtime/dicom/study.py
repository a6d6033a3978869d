"""Typed objects for discovered studies: Study → Series → Instance (headers only, no pixels).

These objects hold identifiers (UIDs) because grouping needs them; they are PHI. Their ``repr``
never shows a UID or a path, and nothing in medfuse logs them. Use :meth:`Study.key` for a
pseudonymous key.

An instance may also carry :class:`HeaderFacts`: the few header values loading needs, taken
during discovery, so that :func:`~medfuse.runtime.dicom.load_volume` reads only the pixel bytes
of an unchanged, uncompressed file instead of parsing its header a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medfuse.runtime.results.keys import study_key

__all__ = ["HeaderFacts", "Instance", "Series", "Study"]


@dataclass(frozen=True, slots=True)
class HeaderFacts:
    """What loading needs from one file's header, recorded by discovery (no patient data).

    Present only for a file that loading would read through the plain path without error:
    uncompressed little- or big-endian data of 8, 16 or 32 bits per sample, one sample,
    MONOCHROME1/2, no per-frame functional groups, no Modality LUT Sequence, every attribute
    loading reads valid, Pixel Data complete and followed only by well-formed elements.

    Loading uses the facts only for a file whose bytes outside the Pixel Data value still have
    the recorded ``digest`` (it reads the whole file once and checks); for any other file, and
    whenever the read with facts fails, it parses the series' files as it would without facts,
    so a file changed since discovery gets the same values or error as without them.

    Attributes
    ----------
    file_size:
        Size of the file in bytes when its header was read.
    pixel_offset, pixel_length:
        File offset and length (bytes) of the Pixel Data (7FE0,0010) element's value.
    digest:
        CRC-32 of every byte of the file outside the Pixel Data value (the header, the Pixel
        Data element's tag and length, the elements after it): the same digest means the same
        header, hence the same facts.
    dtype:
        NumPy type string of a stored value, byte order included (``"<i2"``, ``">u2"``...).
    bits_stored:
        BitsStored (bits above it are masked or sign-filled when read).
    rescale:
        ``(slope, intercept)`` of the Modality LUT, or None when the file has no rescale.
    encoding:
        ``"native"`` (the value holds the stored values) or ``"rle"`` (RLE Lossless: the value
        holds encapsulated fragments, decoded when read).

    Loading a series with facts parses one header only where it needs a value the facts leave
    out: the first file's SliceThickness for a single slice or slices without positions.
    """

    file_size: int
    pixel_offset: int
    pixel_length: int
    digest: int
    dtype: str
    bits_stored: int
    rescale: tuple[float, float] | None = None
    encoding: str = "native"  # or "rle": RLE Lossless fragments, one per frame


@dataclass(frozen=True)
class Instance:
    """One DICOM image file (possibly multi-frame), from its header."""

    path: Path = field(repr=False)
    sop_instance_uid: str = field(repr=False)
    frames: int = 1
    rows: int = 0
    columns: int = 0
    instance_number: int | None = None
    position: tuple[float, float, float] | None = None  # ImagePositionPatient (first frame)
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient (6 values)
    pixel_spacing: tuple[float, float] | None = None  # PixelSpacing (row, column) in mm
    imager_pixel_spacing: tuple[float, float] | None = None  # ImagerPixelSpacing (detector plane)
    photometric_interpretation: str = ""  # MONOCHROME1, MONOCHROME2, RGB, ...
    samples_per_pixel: int = 1
    facts: HeaderFacts | None = field(default=None, repr=False)  # None: loading parses the file
    modality: str = ""  # this file's Modality (a series whose files disagree is refused)
    series_number: int | None = None  # SeriesNumber
    transfer_syntax: str = field(default="", repr=False)  # TransferSyntaxUID
    problem: str | None = None  # a fault seen in the header: "pixel_length"
    patient: str = field(default="", repr=False)  # a digest of PatientID (never written out)
    bad_values: tuple[str, ...] = ()  # keywords whose values the pixel pipeline cannot use
    bits_stored: int | None = None  # BitsStored (a 12-bit JPEG needs its own decoder)

    @property
    def is_grayscale(self) -> bool:
        """Whether the pixel pipeline can read it (one sample, MONOCHROME1/2)."""
        return self.samples_per_pixel == 1 and self.photometric_interpretation in (
            "MONOCHROME1",
            "MONOCHROME2",
        )


@dataclass(frozen=True)
class Series:
    """One series: its instances in file-discovery order (sort geometry with ``medfuse.runtime.dicom``).

    ``modality`` is the first file's Modality; :attr:`mixed_modality` says whether the files
    disagree. ``unreadable_files`` counts files of this series (by their Study and Series
    Instance UIDs) whose header could not be read: they are not among ``instances``.
    """

    uid: str = field(repr=False)
    modality: str = ""
    instances: tuple[Instance, ...] = ()
    frame_of_reference_uid: str | None = field(default=None, repr=False)
    number: int | None = None  # SeriesNumber
    unreadable_files: int = 0
    duplicate_files: int = 0  # files repeating an instance's SOPInstanceUID, left out
    mixed_frame_of_reference: bool = False  # its files name more than one FrameOfReferenceUID

    @property
    def mixed_modality(self) -> bool:
        """Whether the series' files carry different Modality values."""
        return len({i.modality for i in self.instances}) > 1

    @property
    def frames(self) -> int:
        """Total number of frames (slices) across instances."""
        return sum(i.frames for i in self.instances)

    @property
    def rows(self) -> int:
        return self.instances[0].rows if self.instances else 0

    @property
    def columns(self) -> int:
        return self.instances[0].columns if self.instances else 0


@dataclass(frozen=True)
class Study:
    """One study (StudyInstanceUID) with its image series."""

    uid: str = field(repr=False)
    series: tuple[Series, ...] = ()
    unreadable_nearby: int = 0  # unreadable files/folders beside its files, study unknown
    patients: int = 1  # distinct PatientIDs among its files (more than one is a fault)

    def key(self, secret: bytes) -> str:
        """Pseudonymous key: HMAC-SHA256 of the StudyInstanceUID (see :mod:`medfuse.runtime.results.keys`)."""
        return study_key(self.uid, secret)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present, sorted, without duplicates."""
        return tuple(sorted({s.modality for s in self.series}))
