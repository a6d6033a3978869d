"""Append-only screening results: a JSONL file written line by line, and its CSV mirror.

Durability contract
-------------------
Every record is one JSON object on one line. :class:`ResultsWriter` writes each line with a
single ``write``, then ``flush`` and ``os.fsync``, so a line on disk is complete unless the
machine lost power or the process died inside that one call. :func:`read_results` drops an
incomplete final line (no newline, or not valid JSON) and reports its byte offset; the writer
truncates the file there before it appends, so a resumed run never glues a new record onto a
torn one. Records are keyed by the pseudonymous ``"study"`` key; nothing else identifies a study.

The CSV is derived: :func:`write_csv` rewrites it from the JSONL (atomically, via a temporary
file) so that it is consistent after any number of resumed runs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from medfuse.errors import UsageError

__all__ = [
    "CSV_BASE_COLUMNS",
    "ResultsLog",
    "ResultsWriter",
    "check_output",
    "read_results",
    "summary_fields",
    "write_csv",
]

log = logging.getLogger(__name__)

CSV_BASE_COLUMNS = ("study", "status", "top_class", "probability", "severity", "error_type")


@dataclass(frozen=True)
class ResultsLog:
    """What an existing results file holds.

    Attributes
    ----------
    records:
        The complete records, in file order.
    valid_bytes:
        Length of the file up to and including the last complete line; a writer truncates the
        file to this length before appending.
    torn_bytes:
        Bytes after ``valid_bytes`` (an incomplete final line), 0 when the file ends cleanly.
    bad_lines:
        1-based numbers of complete lines in the middle of the file that were not valid records
        (skipped; their studies are screened again on resume).
    needs_newline:
        The final record is complete but its newline is missing; a writer adds it first.
    """

    records: tuple[dict[str, Any], ...] = ()
    valid_bytes: int = 0
    torn_bytes: int = 0
    bad_lines: tuple[int, ...] = field(default=())
    needs_newline: bool = False

    @property
    def keys(self) -> frozenset[str]:
        """Study keys already recorded."""
        return frozenset(str(r["study"]) for r in self.records)


def _parse_record(line: bytes) -> dict[str, Any] | None:
    """One JSONL line → a record with a string ``"study"`` key, or None when it is not one."""
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("study"), str):
        return None
    return obj


def read_results(path: Path) -> ResultsLog:
    """Read a results JSONL file, tolerating a torn final line.

    Parameters
    ----------
    path:
        The JSONL file. A missing or empty file gives an empty :class:`ResultsLog`.

    Returns
    -------
    ResultsLog
        Records, the length of the valid prefix, and how many trailing bytes are torn.
    """
    path = Path(path)
    if not path.exists():
        return ResultsLog()
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    bad: list[int] = []
    valid = 0  # end of the last complete line
    unterminated = False
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        end = valid + len(line) + 1  # +1: its newline
        last = end > len(
            data
        )  # the segment after the final newline (b"" when the file ends cleanly)
        if not line.strip():
            if not last:
                valid = end
            continue
        rec = _parse_record(line)
        if rec is not None:
            records.append(rec)
            # A truncated JSON object is never valid JSON (its closing brace comes last), so a
            # parseable final segment is a whole record that only lacks its newline.
            valid, unterminated = (len(data), True) if last else (end, False)
        elif last or end == len(data):
            break  # the final line is torn
        else:
            bad.append(lineno)
            valid = end
    torn = len(data) - valid
    if torn:
        log.warning("results file: dropping a torn final line (%d bytes)", torn)
    if bad:
        log.warning("results file: %d unreadable line(s) skipped: %s", len(bad), bad[:10])
    return ResultsLog(
        tuple(records),
        valid_bytes=valid,
        torn_bytes=torn,
        bad_lines=tuple(bad),
        needs_newline=unterminated,
    )


def check_output(path: Path, *, resume: bool) -> int:
    """Check that ``path`` may receive results; returns its current size in bytes.

    Raises
    ------
    UsageError
        ``path`` is a folder, or it is a non-empty file and ``resume`` is not set.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--out {path.name!r} is a folder; give a file name such as results.jsonl")
    size = path.stat().st_size if path.exists() else 0
    if size and not resume:
        raise UsageError(
            f"the results file {path.name!r} already holds {size} bytes; pass --resume to "
            "continue it (studies already in it are skipped) or choose a new --out file"
        )
    return size


class ResultsWriter:
    """Append records to a JSONL file, one durable line each.

    Use as a context manager. Opening with ``resume=False`` refuses a non-empty existing file
    (:class:`~medfuse.errors.UsageError`); ``resume=True`` truncates a torn final line and then
    appends. Each :meth:`write` is flushed and fsynced before it returns.

    Parameters
    ----------
    path:
        The JSONL file; its parent folder is created if needed.
    resume:
        Append to an existing file instead of refusing it.
    """

    def __init__(self, path: Path, *, resume: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        self.existing = ResultsLog()
        self.written = 0
        self._fh: Any = None

    def open(self) -> ResultsWriter:
        """Open (and repair, when resuming) the file; returns ``self``."""
        size = check_output(self.path, resume=self.resume)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.existing = read_results(self.path) if size else ResultsLog()
        fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        if self.existing.torn_bytes:
            fh.truncate(self.existing.valid_bytes)
        if self.existing.needs_newline:
            fh.write(b"\n")
        if self.existing.torn_bytes or self.existing.needs_newline:
            fh.flush()
            os.fsync(fh.fileno())
        self._fh = fh
        return self

    def write(self, record: Mapping[str, Any]) -> None:
        """Append one record as a JSON line; flushed and fsynced before returning."""
        if self._fh is None:
            raise RuntimeError("ResultsWriter.write called before open()")
        line = json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        self._fh.write(line.encode("ascii") + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.written += 1

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> ResultsWriter:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _classification(record: Mapping[str, Any]) -> tuple[str, Mapping[str, float]] | None:
    """(top label, probabilities) of the first classification output of a record."""
    outputs = record.get("outputs") or {}
    for out in outputs.values():
        if isinstance(out, Mapping) and isinstance(out.get("probabilities"), Mapping):
            probs = {str(k): float(v) for k, v in out["probabilities"].items()}
            top = out.get("top") or (max(probs, key=probs.__getitem__) if probs else "")
            return str(top), probs
    return None


def _severity(record: Mapping[str, Any]) -> float | None:
    """The ``severity`` value of a record (first regression output when none is named so)."""
    outputs = record.get("outputs") or {}
    ordered = sorted(outputs.items(), key=lambda kv: kv[0] != "severity")
    for _name, out in ordered:
        if isinstance(out, Mapping) and "value" in out and out["value"] is not None:
            return float(out["value"])
        if isinstance(out, Mapping) and isinstance(out.get("values"), list) and out["values"]:
            return float(out["values"][0])
    return None


def summary_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """Flat view of one record: study, status, top class, probability, severity, error type.

    Used by the CSV and by the CLI tables; missing parts are ``None``.
    """
    cls = _classification(record)
    error = record.get("error") or {}
    return {
        "study": record.get("study"),
        "status": record.get("status"),
        "top_class": cls[0] if cls else None,
        "probability": cls[1].get(cls[0]) if cls else None,
        "probabilities": dict(cls[1]) if cls else {},
        "severity": _severity(record),
        "error_type": error.get("type") if isinstance(error, Mapping) else None,
    }


def write_csv(records: Iterable[Mapping[str, Any]], path: Path) -> int:
    """(Re)write the CSV mirror of ``records`` atomically; returns the number of rows.

    Columns: ``study, status, top_class, probability, severity, error_type`` and one
    ``p_<label>`` column per class label seen (in first-seen order).
    """
    path = Path(path)
    rows = [summary_fields(r) for r in records]
    labels: list[str] = []
    for row in rows:
        for label in row["probabilities"]:
            if label not in labels:
                labels.append(label)
    header = [*CSV_BASE_COLUMNS, *(f"p_{label}" for label in labels)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            probs = row["probabilities"]
            writer.writerow(
                [
                    *(_cell(row[c]) for c in CSV_BASE_COLUMNS),
                    *(_cell(probs.get(label)) for label in labels),
                ]
            )
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
