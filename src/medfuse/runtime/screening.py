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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfuse._paths import check_output_dir, check_output_file, writing
from medfuse.errors import DicomError, UsageError
from medfuse.runtime.feed import DiscoveryFeed
from medfuse.runtime.results import (
    ModelInfo,
    ResultRecord,
    ResultsWriter,
    StudyResult,
    check_output,
    load_or_create_secret,
    read_results,
    write_csv,
)
from medfuse.runtime.results.keys import key_fingerprint
from medfuse.runtime.results.lock import ResultsLock, check_fingerprint
from medfuse.runtime.results.outcomes import StudyOutcome
from medfuse.runtime.results.record import outcome_timing
from medfuse.runtime.results.segmentation import write_masks
from medfuse.runtime.threads import check_threads

if TYPE_CHECKING:
    from medfuse.runtime.dicom import Discovery
    from medfuse.runtime.session import Session

__all__ = [
    "DEFAULT_SECRET_FILE",
    "SECRET_FILE_ENV",
    "ScreeningProgress",
    "ScreeningSummary",
    "default_secret_file",
    "discover_or_explain",
    "reason_counts",
    "refuse_bare_model",
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
    this run's ``ok`` screenings (a study screened again counts each time); ``stage_s`` the
    seconds of each stage over every screening of this run, whatever its outcome.
    ``skipped_files`` counts the files discovery set aside, by reason.
    ``reasons`` counts, over the studies without a result, why each input was empty
    (``"ct: too_few_frames"`` → studies); ``warnings`` counts warning codes over all studies.
    ``rescreened`` counts the studies discovery handed on before it had read all their files
    (they lie in several folders): screened again in their final form, whose record supersedes
    any written before (the last record of a study key counts).
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
    stage_s: Mapping[str, float] = field(default_factory=dict)
    reasons: Mapping[str, int] = field(default_factory=dict)
    warnings: Mapping[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    rescreened: int = 0

    @property
    def total(self) -> int:
        """Records in the results file."""
        return sum(self.by_status.values())

    @property
    def studies_per_s_wall(self) -> float:
        """This run's studies per second over the whole call: discovery, the model's start and
        writing included (what a user waits for)."""
        return self.screened / self.wall_s if self.wall_s > 0 else 0.0

    def time_split_s(self) -> dict[str, float]:
        """Seconds of work per stage over this run, every screening counted (stages overlap:
        they sum to more than ``wall_s`` when the pipeline keeps several cores busy)."""
        return {
            "discovery": self.discovery_s,
            "session_open": self.session_open_s,
            **self.stage_s,
        }

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
            "wall_s": round(self.wall_s, 3),
            "studies_per_s_wall": round(self.studies_per_s_wall, 3),
            "time_split_s": {k: round(v, 3) for k, v in self.time_split_s().items()},
            "rescreened": self.rescreened,
        }


def screen_studies(
    studies_dir: str | Path,
    out: str | Path,
    *,
    bundle: str | Path | None = None,
    csv_path: str | Path | None = None,
    batch_size: int = 4,
    workers: int | None = None,
    resume: bool = False,
    key_secret_file: str | Path | None = None,
    backend: str = "auto",
    precision: str = "auto",
    device: str = "auto",
    threads: int | None = None,
    progress: Callable[[ScreeningProgress], None] | None = None,
    masks_dir: str | Path | None = None,
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
        Inference batch size and preprocessing workers of the session's pipeline (``None``:
        the thread policy sizes them with the inference threads to the cores,
        :func:`medfuse.runtime.threads.plan_threads`).
    resume:
        Continue an existing results file: studies whose key is in it are skipped, a torn
        final line is dropped.
    key_secret_file:
        The study-key secret; default :func:`default_secret_file`. Created on first use.
    backend, precision, device, threads:
        Passed to :class:`medfuse.runtime.session.Session`.
    progress:
        Called after every study with a :class:`ScreeningProgress`.
    masks_dir:
        Write each ``ok`` study's segmentation label maps here as ``<study key>.<output>.npy``
        (uint8, the output's grid); by default masks are summarised in the record only.

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
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    # counts first: a refused count leaves no results file behind
    if workers is not None:
        check_threads(workers, "--workers", minimum=0)
    if threads is not None:
        check_threads(threads, "--threads")
    refuse_bare_model(bundle)
    if root.is_file():  # the path itself is not echoed: folder names may hold patient names
        raise UsageError(
            "the studies path is a file, not a folder; give the folder that holds the study's "
            "DICOM files (run reads every file under it, any nesting)"
        )
    if not root.is_dir():
        raise UsageError("the studies folder does not exist; give a folder of DICOM files")
    check_output_file(out_path, "--out")
    if csv_path is not None and (
        check_output_file(csv_path, "--csv").resolve() == out_path.resolve()
    ):
        raise UsageError("--csv and --out name the same file; give the CSV its own name")
    if masks_dir is not None:
        masks_dir = check_output_dir(masks_dir, "--masks")  # before discovery, not at study 1
    secret = secret_from(key_secret_file)
    fingerprint = key_fingerprint(secret)

    t_start = time.perf_counter()
    # The lock is held from before discovery to the CSV: a second run on the same --out fails
    # at once, before it reads a file or starts a session.
    with ResultsLock(out_path) as lock:
        check_output(out_path, resume=resume)  # under the lock: another writer is named first
        existing = read_results(out_path) if resume else None
        check_fingerprint(out_path, fingerprint, has_records=bool(existing and existing.records))
        done = existing.keys if existing else frozenset()
        feed = DiscoveryFeed(root, secret, done)
        try:
            if not feed.wait_first():  # discovery ended with nothing (new) to screen
                feed.join()
                if not feed.stream.studies_found:
                    explain_empty(feed.stream.discovery)

            model = ModelInfo()
            run = _RunCounts()
            session_open_s = 0.0
            if feed.wait_first():
                from medfuse.runtime.session import Session

                t0 = time.perf_counter()
                # The session opens before the results file: a bad bundle leaves no file behind.
                with Session(
                    bundle,
                    backend=backend,
                    precision=precision,
                    device=device,
                    threads=threads,
                    workers=workers,
                ) as session:
                    session_open_s = time.perf_counter() - t0
                    model = session.info.model_info()
                    with ResultsWriter(
                        out_path, resume=resume, lock=lock, fingerprint=fingerprint
                    ) as writer:
                        run = _screen_feed(
                            session,
                            feed,
                            writer,
                            model,
                            batch_size,
                            session.thread_plan.workers,
                            progress,
                            None if masks_dir is None else Path(masks_dir),
                        )
            elif existing is not None and existing.torn_bytes:
                # repair the torn tail anyway
                ResultsWriter(
                    out_path, resume=True, lock=lock, fingerprint=fingerprint
                ).open().close()
            feed.join()
        except BaseException:
            feed.close()  # discovery stops too: no thread left reading headers
            raise
        discovery = feed.stream.discovery  # counts only: its studies were handed out

        records = read_results(out_path).current
        if csv_path is not None:
            write_csv(records, Path(csv_path))
    if model == ModelInfo() and records:
        model = records[-1].model
    screened = run.ok + run.not_usable + run.errors
    wall_s = time.perf_counter() - t_start
    return ScreeningSummary(
        results_jsonl=str(out_path),
        results_csv=None if csv_path is None else str(csv_path),
        studies_found=feed.stream.studies_found,
        already_done=feed.already,
        screened=screened,
        by_status=dict(Counter(r.status for r in records)),
        by_class=dict(Counter(r.top_class for r in records if r.top_class is not None)),
        errors_by_type=dict(Counter(r.error_type for r in records if r.error_type)),
        skipped_files={str(k): int(v) for k, v in discovery.skipped.items()},
        files_seen=int(discovery.files_seen),
        elapsed_s=run.elapsed_s,
        studies_per_s=screened / run.elapsed_s if run.elapsed_s > 0 else 0.0,
        timing_ms_mean={s: sum(v) / len(v) for s, v in run.stage_ms.items() if v},
        stage_s=dict(run.stage_s),
        model=model,
        torn_bytes_dropped=existing.torn_bytes if existing else 0,
        discovery_s=feed.stream.busy_s,
        session_open_s=session_open_s,
        reasons=reason_counts(records),
        warnings=dict(Counter(w.code for r in records for w in r.warnings)),
        wall_s=wall_s,
        rescreened=run.rescreened,
    )


def refuse_bare_model(bundle: str | Path | None) -> None:
    """Refuse a missing bundle path or a bare model file (``.onnx``, ``.engine``, ``.pt``, ...)
    before any work starts (discovery of a large folder takes minutes).

    Screening needs a bundle: the model's spec (inputs, preprocessing, outputs) is in its
    manifest, not in the model file.
    """
    if bundle is None or not isinstance(bundle, str | Path):
        return
    path = Path(bundle).expanduser()
    if not path.exists():
        from medfuse.bundle import open_bundle

        open_bundle(path)  # raises the one "bundle ... not found" BundleError, full path
    if path.suffix.lower() in (".onnx", ".engine", ".plan", ".pt", ".pth"):
        raise UsageError(
            f"{path} is a bare model file; run needs a bundle (NAME.medfuse directory or zip) "
            "whose manifest says how to preprocess studies and read the outputs. Make one with "
            "`medfuse export` (from a PyTorch model) or use the bundle the file came from"
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
    explain_empty(discovery)
    return discovery


def explain_empty(discovery: Discovery) -> None:
    """Raise :class:`DicomError` when ``discovery`` found no study, saying what it skipped."""
    if not discovery.studies:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(discovery.skipped.items())) or "none"
        raise DicomError(
            f"no DICOM image study found in the studies folder ({discovery.files_seen} files "
            f"looked at; skipped: {reasons}); point it at a folder that holds DICOM image files"
        )


@dataclass
class _RunCounts:
    ok: int = 0
    not_usable: int = 0
    errors: int = 0
    rescreened: int = 0  # studies screened again: discovery found more of their files later
    elapsed_s: float = 0.0
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in _STAGES})
    # seconds of work per stage over every screening of this run, whatever its outcome, also
    # one whose record was superseded or never written (the work was done all the same)
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_STAGES, 0.0))

    def work(self, outcome: StudyOutcome) -> None:
        timing = outcome_timing(outcome)
        for stage in _STAGES:
            self.stage_s[stage] += timing.get(stage, 0.0) / 1e3

    def count(self, record: ResultRecord) -> None:
        if record.ok:
            for stage in _STAGES:
                v = record.timing_ms.get(stage)
                if v is not None:
                    self.stage_ms[stage].append(float(v))
        self._step(record.status, 1)

    def uncount(self, status: str) -> None:
        """Take back a record superseded by a newer one of the same study."""
        self._step(status, -1)

    def _step(self, status: str, step: int) -> None:
        if status == "ok":
            self.ok += step
        elif status == "no_usable_input":
            self.not_usable += step
        else:
            self.errors += step

    @property
    def written(self) -> int:
        return self.ok + self.not_usable + self.errors


def _screen_feed(
    session: Session,
    feed: DiscoveryFeed,
    writer: ResultsWriter,
    model: ModelInfo,
    batch_size: int,
    workers: int,
    progress: Callable[[ScreeningProgress], None] | None,
    masks_dir: Path | None = None,
) -> _RunCounts:
    """Run the fed studies through the session, writing each record as soon as it is made.

    A study discovery handed on before it read every folder is *provisional*. Almost always it
    is also final (one folder per patient or study) and its record stands. When a later folder
    adds files to it, discovery hands on its final form at the end: that is screened again and
    its record supersedes the first (the last record of a study key counts:
    :attr:`~medfuse.runtime.results.ResultsLog.current`); a provisional study already known to
    have changed when its result comes is not written at all. Nothing waits for discovery to
    end, so a run that is stopped keeps every record it made.
    """
    run = _RunCounts()
    stream = feed.stream
    written: dict[str, str] = {}  # key → the status of its record

    if progress is not None:
        progress(ScreeningProgress(0, 0, 0, 0, 0.0))
    start = time.perf_counter()
    for outcome in session.predict_many(feed, batch_size=batch_size, workers=workers):
        key, study, final = feed.order.popleft()
        run.work(outcome)
        if not final and stream.changed(study.uid):
            run.rescreened += 1  # more of its files were found: its final form comes later
        else:
            record = ResultRecord.from_outcome(key, outcome, model)
            if masks_dir is not None and isinstance(outcome, StudyResult):
                # masks first: a record on file means its masks are too (resume skips it)
                with writing(masks_dir, "write", "--masks"):
                    write_masks(masks_dir, key, outcome.outputs.values())
            writer.write(record)
            if key in written:  # the final form of a study recorded from part of its files
                run.rescreened += 1
                run.uncount(written[key])
            run.count(record)
            written[key] = record.status
        del study, outcome
        run.elapsed_s = time.perf_counter() - start
        if progress is not None:
            total = feed.pending_total() if stream.done else feed.fed
            progress(
                ScreeningProgress(
                    run.written,
                    max(total, run.written),
                    run.ok,
                    run.errors,
                    run.elapsed_s,
                    run.not_usable,
                )
            )
    return run
