"""Typed objects for discovered studies: Study → Series → Instance (headers only, no pixels).

These objects hold identifiers (UIDs) because grouping needs them; they are PHI. Their ``repr``
never shows a UID or a path, and nothing in medfuse logs them. Use :meth:`Study.key` for a
pseudonymous key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medfuse.runtime.keys import study_key

__all__ = ["Instance", "Series", "Study"]


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

    @property
    def is_grayscale(self) -> bool:
        """Whether the pixel pipeline can read it (one sample, MONOCHROME1/2)."""
        return self.samples_per_pixel == 1 and self.photometric_interpretation in (
            "MONOCHROME1",
            "MONOCHROME2",
        )


@dataclass(frozen=True)
class Series:
    """One series: its instances in file-discovery order (sort geometry with ``medfuse.runtime.dicom``)."""

    uid: str = field(repr=False)
    modality: str = ""
    instances: tuple[Instance, ...] = ()
    frame_of_reference_uid: str | None = field(default=None, repr=False)

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

    def key(self, secret: bytes) -> str:
        """Pseudonymous key: HMAC-SHA256 of the StudyInstanceUID (see :mod:`medfuse.runtime.keys`)."""
        return study_key(self.uid, secret)

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modalities present, sorted, without duplicates."""
        return tuple(sorted({s.modality for s in self.series}))
