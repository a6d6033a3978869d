"""medfuse: multimodal medical-imaging fusion models from PyTorch to validated per-device engines.

The runtime tier (``medfuse.bundle``, ``medfuse.runtime``, ``medfuse.devices``,
``medfuse.benchmarks``) never imports torch or onnx.
"""

from __future__ import annotations

import logging

from medfuse.errors import (
    AccuracyGateError,
    BackendError,
    BundleError,
    CalibrationError,
    CorruptDicomError,
    DicomError,
    EngineBuildError,
    ExportError,
    IncompatibleBundleError,
    InconsistentSeriesError,
    IntegrityError,
    ManifestError,
    MedfuseError,
    MissingDecoderError,
    MissingDependencyError,
    NonFiniteDataError,
    NotDicomError,
    NoUsableInputError,
    PixelDataLengthError,
    PreprocessingError,
    StudyError,
    UnsupportedDicomError,
    UsageError,
)

__version__ = "0.1.0"

from medfuse.bundle.reference import reference_bundle_path as reference_bundle
from medfuse.runtime.session import Session

__all__ = [
    "AccuracyGateError",
    "BackendError",
    "BundleError",
    "CalibrationError",
    "CorruptDicomError",
    "DicomError",
    "EngineBuildError",
    "ExportError",
    "IncompatibleBundleError",
    "InconsistentSeriesError",
    "IntegrityError",
    "ManifestError",
    "MedfuseError",
    "MissingDecoderError",
    "MissingDependencyError",
    "NoUsableInputError",
    "NonFiniteDataError",
    "NotDicomError",
    "PixelDataLengthError",
    "PreprocessingError",
    "Session",
    "StudyError",
    "UnsupportedDicomError",
    "UsageError",
    "__version__",
    "reference_bundle",
]

logging.getLogger("medfuse").addHandler(logging.NullHandler())
