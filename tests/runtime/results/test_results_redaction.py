"""The one redaction policy: defined terms only, medfuse messages kept, others reduced to a type."""

from __future__ import annotations

from pathlib import Path

from medfuse.errors import CorruptDicomError
from medfuse.runtime.results import defined_term, error_info, modality_term, redact
from medfuse.runtime.results.redaction import PHOTOMETRIC_INTERPRETATIONS


def test_defined_terms_pass_and_anything_else_is_unknown() -> None:
    assert modality_term(" ct ") == "CT" and modality_term("DX") == "DX"
    assert modality_term("DOE^JOHN") == "unknown" and modality_term("") == "unknown"
    assert modality_term("CTX" * 30) == "unknown"
    assert defined_term("rgb", PHOTOMETRIC_INTERPRETATIONS) == "RGB"
    assert defined_term("PALETTE COLOR", PHOTOMETRIC_INTERPRETATIONS) == "PALETTE COLOR"
    assert defined_term("JANE DOE", PHOTOMETRIC_INTERPRETATIONS) == "unknown"


def test_medfuse_messages_are_kept_other_exceptions_become_their_type() -> None:
    info = error_info(CorruptDicomError("pixel data is truncated"), stage="read")
    assert (info.type, info.message, info.stage) == (
        "CorruptDicomError",
        "pixel data is truncated",
        "read",
    )
    other = error_info(ValueError("PatientName DOE^JANE /data/DOE/x.dcm"), stage="inference")
    assert other.type == "InternalError" and "DOE" not in other.message
    assert "ValueError" in other.message


def test_redact_removes_the_root_folder(tmp_path: Path) -> None:
    root = tmp_path / "ZZDOE^JANE_MRN99887766"
    assert redact(f"failed under {root}/x", root=root) == "failed under [redacted]/x"
