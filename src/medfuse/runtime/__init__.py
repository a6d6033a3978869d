"""The lean runtime: DICOM reading, preprocessing into buffers, sessions and backends.

Imports only numpy, pydicom, opencv and onnxruntime (TensorRT only inside its backend), and
those lazily: ``import medfuse.runtime`` is cheap.
"""

from __future__ import annotations

from medfuse.runtime.results import OutputResult, SessionInfo, StudyFailure, StudyResult
from medfuse.runtime.session import Session
from medfuse.runtime.validate import ValidationReport, validate_bundle

__all__ = [
    "OutputResult",
    "Session",
    "SessionInfo",
    "StudyFailure",
    "StudyResult",
    "ValidationReport",
    "validate_bundle",
]
