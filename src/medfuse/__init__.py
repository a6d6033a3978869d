"""medfuse: multimodal medical-imaging fusion models from PyTorch to validated per-device engines.

The runtime tier (``medfuse.bundle``, ``medfuse.runtime``, ``medfuse.devices``,
``medfuse.benchmarks``) never imports torch or onnx.

The package is lazy (PEP 562): ``import medfuse`` or ``import medfuse.errors`` loads only the
error tree; ``medfuse.Session`` and ``medfuse.reference_bundle`` import their modules on first
access. So no submodule depends on the order in which the package's names are defined.
"""

from __future__ import annotations

import importlib
import logging
import typing

__version__ = "0.1.0"

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
    ThreadCountError,
    UnsupportedDicomError,
    UntrustedBundleError,
    UsageError,
)

if typing.TYPE_CHECKING:  # what static checkers see; at run time these load on first access
    from medfuse.bundle.reference import reference_bundle_path as reference_bundle
    from medfuse.runtime.session import Session

# name → (module, attribute) of the names loaded on first access
_LAZY: dict[str, tuple[str, str]] = {
    "Session": ("medfuse.runtime.session", "Session"),
    "reference_bundle": ("medfuse.bundle.reference", "reference_bundle_path"),
}

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
    "ThreadCountError",
    "UnsupportedDicomError",
    "UntrustedBundleError",
    "UsageError",
    "__version__",
    "reference_bundle",
]


def __getattr__(name: str) -> typing.Any:
    """Load ``Session`` / ``reference_bundle`` on first access (PEP 562)."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'medfuse' has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


logging.getLogger("medfuse").addHandler(logging.NullHandler())
