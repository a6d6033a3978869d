"""Offline batch screening: a folder of DICOM studies → an append-only JSONL of results.

The Python API behind ``medfuse run``::

    from medfuse.runtime.screening import screen_studies
    summary = screen_studies("/data/incoming", "results.jsonl", csv_path="results.csv")

Steps: discover studies (any nesting, non-DICOM ignored) → key each study pseudonymously
(HMAC-SHA256 of its StudyInstanceUID with a per-deployment secret) → skip the keys already in the
results file when resuming → :meth:`Session.predict_many` (a bounded pipeline that overlaps
reading and preprocessing with inference) → one durable :class:`ResultRecord` line per study →
CSV mirror and a summary. A study is ``ok`` only when the model's presence rule is met;
``no_usable_input`` (nothing the model can use) and ``error`` records carry the reasons, and the
run goes on.

Privacy: a record holds the study key, the model's outputs, the PHI-free provenance (series
ordinals, defined-term modalities, counts), timings, the model's identity and, on error, the
error type and a redacted message (:mod:`medfuse.runtime.results.redaction`). Nothing here opens
a network connection.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfuse._paths import check_output_file
from medfuse.errors import DicomError, UsageError
from medfuse.runtime.results import (
    ModelInfo,
    ResultRecord,
    ResultsWriter,
    check_output,
    load_or_create_secret,
    read_results,
    write_csv,
)
from medfuse.runtime.results.keys import key_fingerprint
from medfuse.runtime.results.lock import ResultsLock, check_fingerprint

if TYPE_CHECKING:
    from medfuse.runtime.dicom import Discovery, Study
    from medfuse.runtime.session import Session

__all__ = [
    "DEFAULT_SECRET_FILE",
    "SECRET_FILE_ENV",
    "ScreeningProgress",
    "ScreeningSummary",
    "default_secret_file",
    "discover_or_explain",
    "reason_counts",
    "screen_studies",
    "secret_from",
]

log = logging.getLogger(__name__)

SECRET_FILE_ENV = "MEDFUSE_KEY_SECRET_FILE"
DEFAULT_SECRET_FILE = Path("~/.config/medfuse/study-key.secret")
_STAGES = ("read", "preprocess", "inference")


def default_secret_file() -> Path:
    """The study-key secret file: ``$MEDFUSE_KEY_SECRET_FILE`` or ``~/.config/medfuse/study-key.secret``."""
    env = os.environ.get(SECRET_FILE_ENV)
    return Path(env).expanduser() if env else DEFAULT_SECRET_FILE.expanduser()


def secret_from(key_secret_file: str | Path | None) -> bytes:
    """The study-key secret from ``key_secret_file`` (default :func:`default_secret_file`)."""
    return load_or_create_secret(
        Path(key_secret_file).expanduser() if key_secret_file else default_secret_file()
    )


@dataclass(frozen=True)
class ScreeningProgress:
    """Where a run stands, passed to the ``progress`` callback after every study."""

    done: int
    total: int
    ok: int
    errors: int
    elapsed_s: float
    not_usable: int = 0

    @property
    def studies_per_s(self) -> float:
        """Throughput so far."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class ScreeningSummary:
    """The outcome of a screening run.

    Counts ``by_status``, ``by_class``, ``errors_by_type``, ``reasons`` and ``warnings`` cover
    the whole results file (so they are complete after a resumed run); ``screened``,
    ``elapsed_s`` and ``studies_per_s`` cover this run only (from the first batch to the last
    record, without discovery and the session's start, which ``discovery_s`` and
    ``session_open_s`` give). ``timing_ms_mean`` is the mean per-study time of each stage over
    this run's ``ok`` studies. ``skipped_files`` counts the files discovery set aside, by reason.
    ``reasons`` counts, over the studies without a result, why each input was empty
    (``"ct: too_few_frames"`` → studies); ``warnings`` counts warning codes over all studies.
    """

    results_jsonl: str
    results_csv: str | None
    studies_found: int
    already_done: int
    screened: int
    by_status: Mapping[str, int]
    by_class: Mapping[str, int]
    errors_by_type: Mapping[str, int]
    skipped_files: Mapping[str, int]
    files_seen: int
    elapsed_s: float
    studies_per_s: float
    timing_ms_mean: Mapping[str, float]
    model: ModelInfo = field(default_factory=ModelInfo)
    torn_bytes_dropped: int = 0
    discovery_s: float = 0.0
    session_open_s: float = 0.0
    reasons: Mapping[str, int] = field(default_factory=dict)
    warnings: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Records in the results file."""
        return sum(self.by_status.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``medfuse run --json`` prints)."""
        return {
            "results_jsonl": self.results_jsonl,
            "results_csv": self.results_csv,
            "studies_found": self.studies_found,
            "already_done": self.already_done,
            "screened": self.screened,
            "total": self.total,
            "by_status": dict(self.by_status),
            "by_class": dict(self.by_class),
            "errors_by_type": dict(self.errors_by_type),
            "reasons": dict(self.reasons),
            "warnings": dict(self.warnings),
            "skipped_files": dict(self.skipped_files),
            "files_seen": self.files_seen,
            "elapsed_s": round(self.elapsed_s, 3),
            "studies_per_s": round(self.studies_per_s, 3),
            "timing_ms_mean": {k: round(v, 3) for k, v in self.timing_ms_mean.items()},
            "model": self.model.to_json(),
            "torn_bytes_dropped": self.torn_bytes_dropped,
            "discovery_s": round(self.discovery_s, 3),
            "session_open_s": round(self.session_open_s, 3),
        }


def screen_studies(
    studies_dir: str | Path,
    out: str | Path,
    *,
    bundle: str | Path | None = None,
    csv_path: str | Path | None = None,
    batch_size: int = 4,
    workers: int = 2,
    resume: bool = False,
    key_secret_file: str | Path | None = None,
    backend: str = "auto",
    precision: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    progress: Callable[[ScreeningProgress], None] | None = None,
) -> ScreeningSummary:
    """Screen every study under ``studies_dir`` and append one JSON line per study to ``out``.

    Parameters
    ----------
    studies_dir:
        Folder of DICOM files (any nesting, any names; non-DICOM files are skipped and counted).
    out:
        Results JSONL. Must be absent or empty unless ``resume`` is set.
    bundle:
        Bundle directory or zip; ``None`` uses the shipped reference bundle.
    csv_path:
        Optional CSV mirror, rewritten from the JSONL at the end of the run.
    batch_size, workers:
        Inference batch size and preprocessing workers of the session's pipeline.
    resume:
        Continue an existing results file: studies whose key is in it are skipped, a torn
        final line is dropped.
    key_secret_file:
        The study-key secret; default :func:`default_secret_file`. Created on first use.
    backend, precision, device, threads:
        Passed to :class:`medfuse.runtime.session.Session`.
    progress:
        Called after every study with a :class:`ScreeningProgress`.

    Returns
    -------
    ScreeningSummary

    Raises
    ------
    UsageError
        Bad arguments, a missing studies folder, or a non-empty ``out`` without ``resume``.
    FileAccessError
        ``out``, ``csv_path`` or the key secret cannot be used (checked before discovery), or a
        write failed (full disk); the message names the path.
    ResultsInUseError
        Another process is writing ``out`` (checked before discovery; names its PID).
    SecretMismatchError
        ``resume`` with another key secret than the one ``out`` was written with.
    DicomError
        No DICOM study was found under ``studies_dir``.
    BundleError, BackendError
        The bundle cannot be opened or run here.
    """
    root = Path(studies_dir)
    out_path = Path(out)
    if batch_size < 1 or workers < 0:
        raise UsageError(
            f"batch size must be >= 1 and workers >= 0, got {batch_size} and {workers}"
        )
    if not root.is_dir():
        raise UsageError(
            "the studies folder does not exist or is not a folder; give a folder of DICOM files"
        )
    check_output_file(out_path, "--out")
    if csv_path is not None and (
        check_output_file(csv_path, "--csv").resolve() == out_path.resolve()
    ):
        raise UsageError("--csv and --out name the same file; give the CSV its own name")
    secret = secret_from(key_secret_file)
    fingerprint = key_fingerprint(secret)

    # The lock is held from before discovery to the CSV: a second run on the same --out fails
    # at once, before it reads a file or starts a session.
    with ResultsLock(out_path) as lock:
        check_output(out_path, resume=resume)  # under the lock: another writer is named first
        existing = read_results(out_path) if resume else None
        check_fingerprint(out_path, fingerprint, has_records=bool(existing and existing.records))

        t0 = time.perf_counter()
        discovery = discover_or_explain(root)
        discovery_s = time.perf_counter() - t0
        studies = list(discovery.studies)

        done = existing.keys if existing else frozenset()
        pending = [(k, s) for k, s in ((s.key(secret), s) for s in studies) if k not in done]
        log.info(
            "screening %d studies (%d already in the results file)",
            len(pending),
            len(studies) - len(pending),
        )

        model = ModelInfo()
        run = _RunCounts()
        session_open_s = 0.0
        if pending:
            from medfuse.runtime.session import Session

            t0 = time.perf_counter()
            # The session opens before the results file: a bad bundle leaves no file behind.
            with Session(
                bundle, backend=backend, precision=precision, device=device, threads=threads
            ) as session:
                session_open_s = time.perf_counter() - t0
                model = session.info.model_info()
                with ResultsWriter(
                    out_path, resume=resume, lock=lock, fingerprint=fingerprint
                ) as writer:
                    run = _screen_pending(
                        session, pending, writer, model, batch_size, workers, progress
                    )
        elif existing is not None and existing.torn_bytes:
            # repair the torn tail anyway
            ResultsWriter(out_path, resume=True, lock=lock, fingerprint=fingerprint).open().close()

        records = read_results(out_path).records
        if csv_path is not None:
            write_csv(records, Path(csv_path))
    if model == ModelInfo() and records:
        model = records[-1].model
    screened = run.ok + run.not_usable + run.errors
    return ScreeningSummary(
        results_jsonl=str(out_path),
        results_csv=None if csv_path is None else str(csv_path),
        studies_found=len(studies),
        already_done=len(studies) - len(pending),
        screened=screened,
        by_status=dict(Counter(r.status for r in records)),
        by_class=dict(Counter(r.top_class for r in records if r.top_class is not None)),
        errors_by_type=dict(Counter(r.error_type for r in records if r.error_type)),
        skipped_files={str(k): int(v) for k, v in discovery.skipped.items()},
        files_seen=int(discovery.files_seen),
        elapsed_s=run.elapsed_s,
        studies_per_s=screened / run.elapsed_s if run.elapsed_s > 0 else 0.0,
        timing_ms_mean={s: sum(v) / len(v) for s, v in run.stage_ms.items() if v},
        model=model,
        torn_bytes_dropped=existing.torn_bytes if existing else 0,
        discovery_s=discovery_s,
        session_open_s=session_open_s,
        reasons=reason_counts(records),
        warnings=dict(Counter(w.code for r in records for w in r.warnings)),
    )


def reason_counts(records: Iterable[ResultRecord]) -> dict[str, int]:
    """``"input: code"`` → number of studies without a result whose input was empty for it."""
    counts = Counter(f"{r.input}: {r.code}" for rec in records for r in rec.reasons)
    return dict(counts.most_common())


def discover_or_explain(
    root: Path, progress: Callable[[int, int], None] | None = None
) -> Discovery:
    """Discover the studies under ``root``; no study at all is a :class:`DicomError`."""
    from medfuse.runtime.dicom import discover_studies

    t0 = time.perf_counter()
    discovery = discover_studies(root, progress=progress)
    log.info(
        "discovery: %d studies from %d files in %.1f s",
        len(discovery.studies),
        discovery.files_seen,
        time.perf_counter() - t0,
    )
    if not discovery.studies:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(discovery.skipped.items())) or "none"
        raise DicomError(
            f"no DICOM image study found in the studies folder ({discovery.files_seen} files "
            f"looked at; skipped: {reasons}); point it at a folder that holds DICOM image files"
        )
    return discovery


@dataclass
class _RunCounts:
    ok: int = 0
    not_usable: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in _STAGES})


def _screen_pending(
    session: Session,
    pending: Sequence[tuple[str, Study]],
    writer: ResultsWriter,
    model: ModelInfo,
    batch_size: int,
    workers: int,
    progress: Callable[[ScreeningProgress], None] | None,
) -> _RunCounts:
    """Run the pending studies through the session, writing one record per study as it comes."""
    run = _RunCounts()
    if progress is not None:
        progress(ScreeningProgress(0, len(pending), 0, 0, 0.0))
    start = time.perf_counter()
    outcomes = session.predict_many(
        (s for _k, s in pending), batch_size=batch_size, workers=workers
    )
    for (key, _study), outcome in zip(pending, outcomes, strict=True):
        record = ResultRecord.from_outcome(key, outcome, model)
        writer.write(record)
        if record.ok:
            run.ok += 1
            for stage in _STAGES:
                v = record.timing_ms.get(stage)
                if v is not None:
                    run.stage_ms[stage].append(float(v))
        elif record.status == "no_usable_input":
            run.not_usable += 1
        else:
            run.errors += 1
        run.elapsed_s = time.perf_counter() - start
        if progress is not None:
            progress(
                ScreeningProgress(
                    run.ok + run.not_usable + run.errors,
                    len(pending),
                    run.ok,
                    run.errors,
                    run.elapsed_s,
                    run.not_usable,
                )
            )
    return run
