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
    │   │   ├── PixelDataLengthError    Pixel Data longer or shorter than the header says
    │   │   └── InconsistentSeriesError the files of one series disagree (modality, size,
    │   │                               orientation, positions); ``reason`` says how
    │   ├── MixedPatientError       the files of one study name more than one patient
    │   └── UnsupportedDicomError   valid DICOM we do not handle (colour, non-image IOD)
    │       ├── MissingDecoderError no decoder installed for the transfer syntax (names it)
    │       └── OversizeDicomError  declared or inflated size above the reading caps
    ├── StudyError                  a study cannot feed the model (required modality missing)
    │   └── NoUsableInputError      the model's presence rule is not met; carries the
    │                               study's provenance (which series, why not used)
    ├── PreprocessingError          a recipe cannot be applied (shapes, bad recipe)
    │   └── NonFiniteDataError      a series' values are NaN or infinite
    ├── ExportError                 torch → ONNX export, parity or lint failed
    │   └── SpecError               a spec file's field is invalid (path to it, what works)
    ├── CalibrationError            calibration set empty / unusable, quantization failed
    ├── AccuracyGateError           a quantized variant changes the model's answers too much
    ├── EngineBuildError            a TensorRT engine could not be built here
    ├── BackendError                an inference backend cannot run (unavailable, bad feeds)
    │   └── NonFiniteOutputError    the model's outputs for a study are NaN or infinite
    ├── UploadTooLargeError         a serve upload over its member / size / ratio caps (413)
    └── UsageError                  a request that can never work as asked (CLI exit code 2)
        ├── FileAccessError         an output, input or secret path cannot be used (names it)
        ├── ResultsInUseError       another process holds the results file's lock (names PID)
        ├── SecretMismatchError     --resume with another key secret than the file's
        └── ThreadCountError        a thread / worker count outside the allowed range
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccuracyGateError",
    "BackendError",
    "BundleError",
    "CalibrationError",
    "CorruptDicomError",
    "DicomError",
    "EngineBuildError",
    "ExportError",
    "FileAccessError",
    "IncompatibleBundleError",
    "InconsistentSeriesError",
    "IntegrityError",
    "ManifestError",
    "MedfuseError",
    "MissingDecoderError",
    "MissingDependencyError",
    "MixedPatientError",
    "NoUsableInputError",
    "NonFiniteDataError",
    "NonFiniteOutputError",
    "NotDicomError",
    "OversizeDicomError",
    "PixelDataLengthError",
    "PreprocessingError",
    "ResultsInUseError",
    "SecretMismatchError",
    "SpecError",
    "StudyError",
    "ThreadCountError",
    "UnsupportedDicomError",
    "UntrustedBundleError",
    "UploadTooLargeError",
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
    """A DICOM file or series could not be used.

    ``reason`` is the short code a result record gives for a series that failed this way
    (see :mod:`medfuse.runtime.results.provenance`).
    """

    reason = "unreadable"


class NotDicomError(DicomError):
    """The file is not a DICOM image file (random bytes, empty file, DICOMDIR)."""


class CorruptDicomError(DicomError):
    """The file is DICOM but truncated or carries invalid values."""


class PixelDataLengthError(CorruptDicomError):
    """Uncompressed Pixel Data is longer or shorter than Rows × Columns × Frames × bits says."""

    reason = "pixel_length"


class InconsistentSeriesError(CorruptDicomError):
    """The files of one series disagree, so they do not form one image or volume.

    ``reason`` is one of ``mixed_modality``, ``mixed_sizes``, ``mixed_orientation`` and
    ``duplicate_positions``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.reason))


class MixedPatientError(DicomError):
    """The files under one StudyInstanceUID name more than one patient: not one study."""

    reason = "mixed_patient"


class UnsupportedDicomError(DicomError):
    """The file is valid DICOM that medfuse does not handle."""

    reason = "unsupported"


class MissingDecoderError(UnsupportedDicomError):
    """No pixel decoder is installed for the file's transfer syntax; the message names one."""

    reason = "undecodable"


class OversizeDicomError(UnsupportedDicomError):
    """The image is larger than medfuse reads: its declared frame or pixel count, or the
    inflated size of a deflated file, is above the caps of :mod:`medfuse.runtime.dicom.limits`.
    Raised before the pixels (or the inflated data) are allocated."""

    reason = "too_large"


class StudyError(MedfuseError):
    """A study cannot feed the model, e.g. a required modality is missing."""


class NoUsableInputError(StudyError):
    """The study does not meet the model's presence rule, so no result may be given.

    ``provenance`` (a :class:`medfuse.runtime.results.Provenance`) says which series the
    study holds and why each was not used; ``fault`` is the first read error among the series
    that could have fed an input (``None`` when the study simply holds nothing usable).
    """

    def __init__(self, message: str, provenance: Any, fault: BaseException | None = None) -> None:
        super().__init__(message)
        self.provenance = provenance
        self.fault = fault

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.provenance, self.fault))


class PreprocessingError(MedfuseError):
    """A preprocessing recipe cannot be applied to the data."""


class NonFiniteDataError(PreprocessingError):
    """A series' values are NaN or infinite, so no recipe can normalise them."""

    reason = "non_finite"


class ExportError(MedfuseError):
    """Export to ONNX, its lint, or its parity check failed."""


class SpecError(ExportError):
    """A spec file (or spec object) is invalid: the message names the field path and what
    would work."""


class CalibrationError(MedfuseError):
    """Calibration data is unusable or quantization failed."""


class AccuracyGateError(MedfuseError):
    """A candidate variant failed the accuracy gate against FP32."""


class EngineBuildError(MedfuseError):
    """A TensorRT engine could not be built."""


class BackendError(MedfuseError):
    """An inference backend is unavailable or was given bad feeds."""


class NonFiniteOutputError(BackendError):
    """The model produced NaN or infinite outputs for a study: no result may rest on them."""

    reason = "non_finite_output"


class UsageError(MedfuseError):
    """A request that cannot work as asked; the CLI exits with code 2."""


class UploadTooLargeError(MedfuseError):
    """An upload to ``medfuse serve`` is over its caps (member count, sizes, compression
    ratio); the server answers the client with this error for the study (HTTP 413 alike)."""


class FileAccessError(UsageError):
    """A path medfuse must write or read cannot be used (read-only, missing or file parent,
    a folder where a file is needed, full disk); the message names the full path and what
    would work."""


class ResultsInUseError(UsageError):
    """Another process is writing the same results file (its lock is held); the message names
    the lock file and the other process's PID."""


class SecretMismatchError(UsageError):
    """``--resume`` with a key secret other than the one the results file was written with."""


class ThreadCountError(UsageError):
    """A thread or worker count outside the range this machine allows (the message says it)."""
