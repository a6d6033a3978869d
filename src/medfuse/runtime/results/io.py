"""Append-only screening results: a JSONL file written line by line, and its CSV mirror.

Durability contract
-------------------
Every record is one JSON object on one line. :class:`ResultsWriter` writes each line with a
single ``write``, then ``flush`` and ``os.fsync``, so a line on disk is complete unless the
machine lost power or the process died inside that one call. :func:`read_results` drops an
incomplete final line (no newline, or not valid JSON) and reports its byte offset; the writer
truncates the file there before it appends, so a resumed run never glues a new record onto a
torn one. Records are keyed by the pseudonymous ``"study"`` key; nothing else identifies a study.
Lines are :class:`~medfuse.runtime.results.record.ResultRecord` objects on both sides: the writer
takes them, the reader gives them back typed.

One process writes a file at a time: the writer holds an exclusive ``flock`` on ``<file>.lock``
(:mod:`medfuse.runtime.results.lock`, which also keeps the key secret's fingerprint in
``<file>.meta``); any ``OSError`` while writing is a :class:`~medfuse.errors.FileAccessError`
naming the file.

The CSV is derived: :func:`write_csv` rewrites it from the JSONL (atomically, via a temporary
file) so that it is consistent after any number of resumed runs.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from medfuse._paths import check_output_file, writing
from medfuse.bundle.units import OutputUnit
from medfuse.errors import MedfuseError, UsageError
from medfuse.runtime.results.lock import ResultsLock, write_fingerprint
from medfuse.runtime.results.record import SCHEMA, ResultRecord

__all__ = [
    "CSV_BASE_COLUMNS",
    "ResultsLog",
    "ResultsWriter",
    "check_output",
    "csv_cells",
    "read_results",
    "write_csv",
]

log = logging.getLogger(__name__)

CSV_BASE_COLUMNS = (
    "study",
    "status",
    "top_class",
    "probability",
    "severity",
    "error_type",
    "inputs",
    "reasons",
    "warnings",
)


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

    records: tuple[ResultRecord, ...] = ()
    valid_bytes: int = 0
    torn_bytes: int = 0
    bad_lines: tuple[int, ...] = field(default=())
    needs_newline: bool = False

    @property
    def keys(self) -> frozenset[str]:
        """Study keys already recorded with what they rest on (schema 2 or later).

        A schema-1 record (written before provenance existed) may be an ``ok`` made from no
        image at all, so its study counts as not screened: ``--resume`` screens it again and
        the new record supersedes it (:attr:`current`).
        """
        return frozenset(
            r.study for r in self.records if r.study is not None and r.schema >= SCHEMA
        )

    @property
    def current(self) -> tuple[ResultRecord, ...]:
        """One record per study, the last written (a re-screened study's newest), in file order
        of those records."""
        last = {r.study: i for i, r in enumerate(self.records)}
        return tuple(r for i, r in enumerate(self.records) if last[r.study] == i)


def _parse_record(line: bytes) -> ResultRecord | None:
    """One JSONL line → a record with a study key, or None when it is not one."""
    try:
        record = ResultRecord.from_json(json.loads(line))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, MedfuseError):
        return None
    return record if record.study is not None else None


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (UnicodeDecodeError, ValueError):
        return False
    return True


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
    with writing(path, "read the results file", "--out"):
        data = path.read_bytes()
    records: list[ResultRecord] = []
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
        elif (last or end == len(data)) and not _is_json(line):
            break  # the final line is torn: a write cut short
        else:  # a complete line that is not a record: kept in the file, its study screened again
            bad.append(lineno)
            valid, unterminated = (len(data), True) if last else (end, False)
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
    FileAccessError
        ``path`` cannot be written (a folder, a file as parent, no permission).
    UsageError
        ``path`` is a non-empty file and ``resume`` is not set.
    """
    path = check_output_file(path, "--out")
    with writing(path, "read", "--out"):
        size = path.stat().st_size if path.exists() and path.is_file() else 0
    if size and not resume:
        raise UsageError(
            f"the results file {path.name!r} already holds {size} bytes; pass --resume to "
            "continue it (studies already in it are skipped) or choose a new --out file"
        )
    return size


class ResultsWriter:
    """Append records to a JSONL file, one durable line each, as its only writer.

    Use as a context manager. Opening takes the file's exclusive lock
    (:class:`~medfuse.runtime.results.lock.ResultsLock`; another writer →
    :class:`~medfuse.errors.ResultsInUseError`) unless a held ``lock`` is passed. Opening with
    ``resume=False`` refuses a non-empty existing file (:class:`~medfuse.errors.UsageError`);
    ``resume=True`` truncates a torn final line and then appends. Each :meth:`write` is flushed
    and fsynced before it returns; an ``OSError`` (full disk …) is a
    :class:`~medfuse.errors.FileAccessError` naming the file.

    Parameters
    ----------
    path:
        The JSONL file; its parent folder is created if needed.
    resume:
        Append to an existing file instead of refusing it.
    lock:
        A lock on ``path`` the caller already holds (it stays held after :meth:`close`).
    fingerprint:
        The key secret's fingerprint, recorded in the ``.meta`` sidecar when opening.
    """

    def __init__(
        self,
        path: Path,
        *,
        resume: bool = False,
        lock: ResultsLock | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.resume = resume
        self.existing = ResultsLog()
        self.written = 0
        self.fingerprint = fingerprint
        self._fh: Any = None
        self._lock = lock
        self._own_lock: ResultsLock | None = None

    def open(self) -> ResultsWriter:
        """Lock, open (and repair, when resuming) the file; returns ``self``."""
        size = check_output(self.path, resume=self.resume)
        if self._lock is None or not self._lock.held:
            self._own_lock = ResultsLock(self.path).acquire()
        try:
            self._open(size)
        except BaseException:
            self.close()
            raise
        return self

    def _open(self, size: int) -> None:
        with writing(self.path, "open the results file", "--out"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.existing = read_results(self.path) if size else ResultsLog()
            if self.fingerprint is not None:
                write_fingerprint(self.path, self.fingerprint)
            fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
            self._fh = fh
            if self.existing.torn_bytes:
                fh.truncate(self.existing.valid_bytes)
            if self.existing.needs_newline:
                fh.write(b"\n")
            if self.existing.torn_bytes or self.existing.needs_newline:
                fh.flush()
                os.fsync(fh.fileno())

    def write(self, record: ResultRecord) -> None:
        """Append one record as a JSON line; flushed and fsynced before returning."""
        if self._fh is None:
            raise UsageError(
                "ResultsWriter.write called before open(); use it as a context manager"
            )
        if record.schema < SCHEMA:
            raise UsageError(
                f"only schema-{SCHEMA} records with their provenance are written; schema-1 "
                "records are read, never written"
            )
        line = json.dumps(
            record.to_json(), ensure_ascii=True, allow_nan=False, separators=(",", ":")
        )
        with writing(self.path, "write the results file", "--out"):
            self._fh.write(line.encode("ascii") + b"\n")
            self._fh.flush()
            _fsync(self._fh.fileno())
        self.written += 1

    def close(self) -> None:
        """Close the file and release a lock it took itself (idempotent)."""
        fh, self._fh = self._fh, None
        try:
            if fh is not None:
                with writing(self.path, "write the results file", "--out"):
                    fh.close()
        finally:
            if self._own_lock is not None:
                self._own_lock.release()
                self._own_lock = None

    def __enter__(self) -> ResultsWriter:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _fsync(fd: int) -> None:
    """``os.fsync``, except on what cannot be synced (a device such as /dev/full, a pipe)."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise


def csv_cells(record: ResultRecord) -> dict[str, Any]:
    """The base CSV columns of one record (:data:`CSV_BASE_COLUMNS`), compact and PHI-free.

    ``inputs`` reads ``ct:CT#2/32 xr:CR#1/1`` (input, modality, series ordinal, frames used);
    ``reasons`` ``ct:too_few_frames mr:no_series``; ``warnings`` ``geometry_unknown:ct``.
    """
    prov = record.provenance
    inputs = (
        " ".join(
            f"{name}:{use.modality}" + ("" if use.series is None else f"#{use.series}/{use.frames}")
            for name, use in prov.inputs.items()
            if use.present
        )
        if prov is not None
        else ""
    )
    return {
        "study": record.study,
        "status": record.status,
        "top_class": record.top_class,
        "probability": record.probability,
        "severity": record.severity,
        "severity_in_unit": record.severity_in_unit,
        "error_type": record.error_type,
        "inputs": inputs,
        "reasons": " ".join(f"{r.input}:{r.code}" for r in record.reasons),
        "warnings": " ".join(f"{w.code}:{w.input}" if w.input else w.code for w in record.warnings),
    }


def write_csv(records: Iterable[ResultRecord], path: Path) -> int:
    """(Re)write the CSV mirror of ``records`` atomically; returns the number of rows.

    Columns: :data:`CSV_BASE_COLUMNS` and one ``p_<label>`` column per class label seen (in
    first-seen order). ``severity`` is named for its unit and holds the value in it when the
    model's spec gives one (``severity_ml`` for the reference model, the mL the demo shows).
    """
    path = Path(path)
    records = list(records)
    labels: list[str] = []
    for record in records:
        out = record.classification()
        for label in out.probabilities if out is not None else ():
            if label not in labels:
                labels.append(label)
    # The severity column says its unit when the spec gives one (``severity_ml``: the value
    # the demo shows); else it is the model's value under ``severity``.
    unit = next((r.severity_unit for r in records if r.severity_unit), None)
    severity = "severity" if unit is None else OutputUnit(unit).column("severity")
    base = [severity if c == "severity" else c for c in CSV_BASE_COLUMNS]
    header = [*base, *(f"p_{label}" for label in labels)]
    with writing(path, "write", "--csv"):
        return _write_rows(records, labels, header, path, unit)


def _write_rows(
    records: list[ResultRecord],
    labels: list[str],
    header: list[str],
    path: Path,
    unit: str | None,
) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for record in records:
            cells = csv_cells(record)
            out = record.classification()
            probs = out.probabilities if out is not None else {}
            writer.writerow(
                [
                    *(
                        _cell(cells["severity_in_unit" if unit and c == "severity" else c])
                        for c in CSV_BASE_COLUMNS
                    ),
                    *(_cell(probs.get(label)) for label in labels),
                ]
            )
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return len(records)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
