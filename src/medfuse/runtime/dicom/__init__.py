"""DICOM ingestion: discovery of studies, the grayscale pixel pipeline, volumes.

- :func:`discover_studies` groups a folder's files into Study → Series → Instance, headers only;
  an instance keeps the few header facts :func:`load_volume` needs, so it parses no header again.
  :class:`StudyStream` does the same folder by folder, handing studies on as they are read.
- :func:`read_frames` reads one file as display values in [0, 1] (modality LUT → VOI →
  polarity), float32 ``(frames, rows, cols)``.
- :func:`load_volume` / :func:`load_image` read a series as modality values (HU for CT) with
  geometry: slices sorted along the orientation normal, spacing from PixelSpacing.
- :func:`apply_modality_lut`, :func:`apply_voi`, :func:`apply_window`, :func:`apply_polarity`
  are the pipeline's steps as plain functions in the standard's order.

Nothing here logs or raises with patient data, UIDs or input paths; :func:`quiet_pydicom`
keeps pydicom's own warnings and log records from leaking values.
"""

from medfuse.runtime.dicom._quiet import quiet_pydicom
from medfuse.runtime.dicom.discovery import SKIP_REASONS, Discovery, discover_studies
from medfuse.runtime.dicom.frames import read_frames
from medfuse.runtime.dicom.processing import (
    VoiLut,
    VoiWindow,
    apply_modality_lut,
    apply_polarity,
    apply_voi,
    apply_window,
    is_inverted,
    scale_minmax,
    voi_transforms,
)
from medfuse.runtime.dicom.streaming import StudyStream
from medfuse.runtime.dicom.study import HeaderFacts, Instance, Series, Study
from medfuse.runtime.dicom.volume import Image2D, Volume, load_image, load_volume

__all__ = [
    "SKIP_REASONS",
    "Discovery",
    "HeaderFacts",
    "Image2D",
    "Instance",
    "Series",
    "Study",
    "StudyStream",
    "VoiLut",
    "VoiWindow",
    "Volume",
    "apply_modality_lut",
    "apply_polarity",
    "apply_voi",
    "apply_window",
    "discover_studies",
    "is_inverted",
    "load_image",
    "load_volume",
    "quiet_pydicom",
    "read_frames",
    "scale_minmax",
    "voi_transforms",
]
