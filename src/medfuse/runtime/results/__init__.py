"""Results: study outcomes, the one result record, its files, study keys, and the redaction policy.

- :mod:`.outcomes` — what a session gives per study: :class:`StudyResult` (``ok``),
  :class:`StudyNotUsable` (``no_usable_input``, or ``error`` from a fault),
  :class:`StudyFailure` (``error``), plus :class:`OutputResult`, :class:`SessionInfo`,
  :class:`ModelInfo`, :class:`ErrorInfo`;
- :mod:`.provenance` — what a result rests on (:class:`Provenance`), reason codes, warnings;
- :mod:`.record` — the frozen :class:`ResultRecord` and its JSON round trip;
- :mod:`.io` — the append-only JSONL writer and reader, and the CSV mirror;
- :mod:`.lock` — one writer per results file (``flock``), and the key fingerprint sidecar;
- :mod:`.keys` — pseudonymous study keys (HMAC of the StudyInstanceUID) and their secret;
- :mod:`.redaction` — the one rule for what may reach a message, a log or a record.

``medfuse run``, ``demo``, ``scan``, ``serve`` and the benchmarks all use these; nothing here
imports pydicom, torch or onnx.
"""

from __future__ import annotations

from medfuse.runtime.results.io import (
    CSV_BASE_COLUMNS,
    ResultsLog,
    ResultsWriter,
    check_output,
    read_results,
    write_csv,
)
from medfuse.runtime.results.keys import KEY_HEX_CHARS, load_or_create_secret, study_key
from medfuse.runtime.results.outcomes import (
    ErrorInfo,
    ModelInfo,
    OutputResult,
    SessionInfo,
    StudyFailure,
    StudyNotUsable,
    StudyOutcome,
    StudyResult,
    apply_activation,
    fault_error,
)
from medfuse.runtime.results.provenance import (
    FAULTS,
    REASONS,
    InputUse,
    Notice,
    PresenceRule,
    Provenance,
    SeriesNote,
    study_status,
)
from medfuse.runtime.results.record import SCHEMA, STATUSES, OutputRecord, Reason, ResultRecord
from medfuse.runtime.results.redaction import defined_term, error_info, modality_term, redact

__all__ = [
    "CSV_BASE_COLUMNS",
    "FAULTS",
    "KEY_HEX_CHARS",
    "REASONS",
    "SCHEMA",
    "STATUSES",
    "ErrorInfo",
    "InputUse",
    "ModelInfo",
    "Notice",
    "OutputRecord",
    "OutputResult",
    "PresenceRule",
    "Provenance",
    "Reason",
    "ResultRecord",
    "ResultsLog",
    "ResultsWriter",
    "SeriesNote",
    "SessionInfo",
    "StudyFailure",
    "StudyNotUsable",
    "StudyOutcome",
    "StudyResult",
    "apply_activation",
    "check_output",
    "defined_term",
    "error_info",
    "fault_error",
    "load_or_create_secret",
    "modality_term",
    "read_results",
    "redact",
    "study_key",
    "study_status",
    "write_csv",
]
