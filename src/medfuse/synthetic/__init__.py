"""Synthetic multimodal phantom studies (CT, MR, projection X-ray) written as real DICOM files.

Offline there is no labelled multimodal data, so this package draws realistic patients — body,
organs, bone and, for positive cases, lesions whose class shows on every modality — and writes
them as valid DICOM with scanner-like variety and fake PHI. Labels (diagnosis, lesion burden in
mL) go to ``labels.csv`` keyed by pseudonymous study keys, never into the DICOM files.

Only numpy and pydicom are needed (``medfuse demo`` runs it on devices without torch).
"""

from __future__ import annotations

from medfuse.synthetic.anatomy import DIAGNOSES, Lesion
from medfuse.synthetic.generate import KEY_FILE, LABELS_CSV, MARKER, SynthSummary, generate_studies
from medfuse.synthetic.geometry import Grid
from medfuse.synthetic.phantom import PatientPhantom, Rendered, make_patient

__all__ = [
    "DIAGNOSES",
    "KEY_FILE",
    "LABELS_CSV",
    "MARKER",
    "Grid",
    "Lesion",
    "PatientPhantom",
    "Rendered",
    "SynthSummary",
    "generate_studies",
    "make_patient",
]
