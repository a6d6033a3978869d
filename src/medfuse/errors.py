"""The exceptions medfuse raises.

Every error medfuse raises on purpose derives from :class:`MedfuseError`. A message says what
failed, the offending value, and what would work; the original exception is chained as
``__cause__``. Messages never carry patient data: no names, IDs, dates, UIDs, descriptions or
file paths from an input folder.

The tree::

    MedfuseError
    ├── MissingDependencyError      an optional package is not installed (names the extra)
    ├── BundleError                 anything about a bundle on disk
    │   ├── ManifestError           manifest.json missing, malformed, or a field invalid
    │   ├── IntegrityError          an artifact's sha256 does not match the manifest
    │   ├── UntrustedBundleError    refused by the trust policy (unsigned, wrong key, pin)
    │   └── IncompatibleBundleError an artifact does not fit this device / runtime
    ├── DicomError                  one DICOM file or series could not be used
    │   ├── NotDicomError           not a DICOM file at all (random bytes, empty, DICOMDIR)
    │   ├── CorruptDicomError       DICOM, but truncated or with invalid values
    │   └── UnsupportedDicomError   valid DICOM we do not handle (colour, non-image IOD,
    │                               transfer syntax with no decoder installed)
    ├── StudyError                  a study cannot feed the model (required modality missing)
    ├── PreprocessingError          a recipe cannot be applied (shapes, NaN, bad recipe)
    ├── ExportError                 torch → ONNX export, parity or lint failed
    ├── CalibrationError            calibration set empty / unusable, quantization failed
    ├── AccuracyGateError           a quantized variant changes the model's answers too much
    ├── EngineBuildError            a TensorRT engine could not be built here
    ├── BackendError                an inference backend cannot run (unavailable, bad feeds)
    └── UsageError                  a request that can never work as asked (CLI exit code 2)
"""

from __future__ import annotations

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
    "IntegrityError",
    "ManifestError",
    "MedfuseError",
    "MissingDependencyError",
    "NotDicomError",
    "PreprocessingError",
    "StudyError",
    "UnsupportedDicomError",
    "UntrustedBundleError",
    "UsageError",
]


class MedfuseError(Exception):
    """Root of every error medfuse raises on purpose."""


class MissingDependencyError(MedfuseError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class BundleError(MedfuseError):
    """A bundle could not be read, written or used."""


class ManifestError(BundleError):
    """manifest.json is missing, malformed, or one of its fields is invalid."""


class IntegrityError(BundleError):
    """An artifact's sha256 does not match the one recorded in the manifest."""


class UntrustedBundleError(BundleError):
    """The trust policy refuses the bundle: unsigned, signed by a key it does not trust (or
    one that expired), a signature over other bytes, or a digest other than the one pinned."""


class IncompatibleBundleError(BundleError):
    """An artifact (engine, schema version) does not fit this device or runtime."""


class DicomError(MedfuseError):
    """A DICOM file or series could not be used."""


class NotDicomError(DicomError):
    """The file is not a DICOM image file (random bytes, empty file, DICOMDIR)."""


class CorruptDicomError(DicomError):
    """The file is DICOM but truncated or carries invalid values."""


class UnsupportedDicomError(DicomError):
    """The file is valid DICOM that medfuse does not handle."""


class StudyError(MedfuseError):
    """A study cannot feed the model, e.g. a required modality is missing."""


class PreprocessingError(MedfuseError):
    """A preprocessing recipe cannot be applied to the data."""


class ExportError(MedfuseError):
    """Export to ONNX, its lint, or its parity check failed."""


class CalibrationError(MedfuseError):
    """Calibration data is unusable or quantization failed."""


class AccuracyGateError(MedfuseError):
    """A candidate variant failed the accuracy gate against FP32."""


class EngineBuildError(MedfuseError):
    """A TensorRT engine could not be built."""


class BackendError(MedfuseError):
    """An inference backend is unavailable or was given bad feeds."""


class UsageError(MedfuseError):
    """A request that cannot work as asked; the CLI exits with code 2."""
