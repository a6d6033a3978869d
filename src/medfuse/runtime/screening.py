"""Offline batch screening: a folder of DICOM studies → an append-only JSONL of results.

The Python API behind ``medfuse run``::

    from medfuse.runtime.screening import screen_studies
    summary = screen_studies("/data/incoming", "results.jsonl", csv_path="results.csv")

Steps: discover studies (any nesting, non-DICOM ignored) → key each study pseudonymously
(HMAC-SHA256 of its StudyInstanceUID with a per-deployment secret) → skip the keys already in the
results file when resuming → :meth:`Session.predict_many` (a bounded pipeline that overlaps
reading and preprocessing with inference) → one durable JSON line per study → CSV mirror and a
summary. A study that fails becomes an ``"error"`` record and the run goes on.

Privacy: a record holds the study key, the model's outputs, modality names, timings, the model's
identity and, on error, the error type and a message. Error messages are PHI-free by contract;
as a second line of defence every UID and file path of the failing study is redacted from them.
Nothing here opens a network connection.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfuse.errors import DicomError, UsageError
from medfuse.runtime.keys import load_or_create_secret
from medfuse.runtime.results_io import (
    ResultsWriter,
    check_output,
    read_results,
    summary_fields,
    write_csv,
)

__all__ = [
    "DEFAULT_SECRET_FILE",
    "SECRET_FILE_ENV",
    "ScreeningProgress",
    "ScreeningSummary",
    "default_secret_file",
    "make_record",
    "redact",
    "screen_studies",
]

log = logging.getLogger(__name__)

SECRET_FILE_ENV = "MEDFUSE_KEY_SECRET_FILE"
DEFAULT_SECRET_FILE = Path("~/.config/medfuse/study-key.secret")
_STAGES = ("read", "preprocess", "inference")


def default_secret_file() -> Path:
    """The study-key secret file: ``$MEDFUSE_KEY_SECRET_FILE`` or ``~/.config/medfuse/study-key.secret``."""
    env = os.environ.get(SECRET_FILE_ENV)
    return Path(env).expanduser() if env else DEFAULT_SECRET_FILE.expanduser()


@dataclass(frozen=True)
class ScreeningProgress:
    """Where a run stands, passed to the ``progress`` callback after every study."""

    done: int
    total: int
    ok: int
    errors: int
    elapsed_s: float

    @property
    def studies_per_s(self) -> float:
        """Throughput so far."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class ScreeningSummary:
    """The outcome of a screening run.

    Counts ``by_status``, ``by_class`` and ``errors_by_type`` cover the whole results file (so
    they are complete after a resumed run); ``screened``, ``elapsed_s`` and ``studies_per_s``
    cover this run only (from the first batch to the last record, without discovery and the
    session's start, which ``discovery_s`` and ``session_open_s`` give). ``timing_ms_mean`` is the mean per-study time of each stage over this
    run's successful studies. ``skipped_files`` counts the files discovery set aside, by reason.
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
    model: Mapping[str, Any] = field(default_factory=dict)
    torn_bytes_dropped: int = 0
    discovery_s: float = 0.0
    session_open_s: float = 0.0

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
            "skipped_files": dict(self.skipped_files),
            "files_seen": self.files_seen,
            "elapsed_s": round(self.elapsed_s, 3),
            "studies_per_s": round(self.studies_per_s, 3),
            "timing_ms_mean": {k: round(v, 3) for k, v in self.timing_ms_mean.items()},
            "model": dict(self.model),
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
    check_output(out_path, resume=resume)
    if csv_path is not None and Path(csv_path).resolve() == out_path.resolve():
        raise UsageError("--csv and --out name the same file; give the CSV its own name")
    secret = load_or_create_secret(
        Path(key_secret_file).expanduser() if key_secret_file else default_secret_file()
    )

    t0 = time.perf_counter()
    discovery = _discover(root)
    discovery_s = time.perf_counter() - t0
    studies = list(discovery.studies)
    skipped = {str(k): int(v) for k, v in discovery.skipped.items()}

    existing = read_results(out_path) if resume else None
    done = existing.keys if existing else frozenset()
    pending = [(k, s) for k, s in ((s.key(secret), s) for s in studies) if k not in done]
    log.info(
        "screening %d studies (%d already in the results file)",
        len(pending),
        len(studies) - len(pending),
    )

    model: dict[str, Any] = {}
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
            model = _model_info(session)
            with ResultsWriter(out_path, resume=resume) as writer:
                run = _screen_pending(
                    session, pending, writer, model, root, batch_size, workers, progress
                )
    elif existing is not None and existing.torn_bytes:
        ResultsWriter(out_path, resume=True).open().close()  # repair the torn tail anyway

    log_all = read_results(out_path)
    if csv_path is not None:
        write_csv(log_all.records, Path(csv_path))
    rows = [summary_fields(r) for r in log_all.records]
    if not model and log_all.records:
        model = dict(log_all.records[-1].get("model") or {})
    return ScreeningSummary(
        results_jsonl=str(out_path),
        results_csv=None if csv_path is None else str(csv_path),
        studies_found=len(studies),
        already_done=len(studies) - len(pending),
        screened=run.ok + run.errors,
        by_status=dict(Counter(str(r["status"]) for r in rows)),
        by_class=dict(Counter(str(r["top_class"]) for r in rows if r["top_class"] is not None)),
        errors_by_type=dict(Counter(str(r["error_type"]) for r in rows if r["error_type"])),
        skipped_files=skipped,
        files_seen=int(discovery.files_seen),
        elapsed_s=run.elapsed_s,
        studies_per_s=(run.ok + run.errors) / run.elapsed_s if run.elapsed_s > 0 else 0.0,
        timing_ms_mean={s: sum(v) / len(v) for s, v in run.stage_ms.items() if v},
        model=model,
        torn_bytes_dropped=existing.torn_bytes if existing else 0,
        discovery_s=discovery_s,
        session_open_s=session_open_s,
    )


def _discover(root: Path) -> Any:
    """Discover the studies under ``root``; no study at all is a :class:`DicomError`."""
    from medfuse.runtime.dicom import discover_studies

    t0 = time.perf_counter()
    discovery = discover_studies(root)
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
    errors: int = 0
    elapsed_s: float = 0.0
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in _STAGES})


def _screen_pending(
    session: Any,
    pending: Sequence[tuple[str, Any]],
    writer: ResultsWriter,
    model: Mapping[str, Any],
    root: Path,
    batch_size: int,
    workers: int,
    progress: Callable[[ScreeningProgress], None] | None,
) -> _RunCounts:
    """Run the pending studies through the session, writing one record per study as it comes."""
    run = _RunCounts()
    if progress is not None:
        progress(ScreeningProgress(0, len(pending), 0, 0, 0.0))
    start = time.perf_counter()
    results = session.predict_many((s for _k, s in pending), batch_size=batch_size, workers=workers)
    for (key, study), result in zip(pending, results, strict=True):
        record = make_record(key, result, model, study=study, root=root)
        writer.write(record)
        if record["status"] == "ok":
            run.ok += 1
            for stage in _STAGES:
                v = record["timing_ms"].get(stage)
                if v is not None:
                    run.stage_ms[stage].append(float(v))
        else:
            run.errors += 1
        run.elapsed_s = time.perf_counter() - start
        if progress is not None:
            progress(
                ScreeningProgress(
                    run.ok + run.errors, len(pending), run.ok, run.errors, run.elapsed_s
                )
            )
    return run


def _model_info(session: Any) -> dict[str, Any]:
    """name, version, variant, backend of a session (whatever ``session.info`` offers)."""
    info = getattr(session, "info", None)
    if info is None:
        return {}
    raw = info.to_dict() if hasattr(info, "to_dict") else dict(vars(info))
    return {
        k: raw[k]
        for k in ("name", "version", "variant", "backend", "device")
        if raw.get(k) is not None
    }


def make_record(
    key: str,
    result: Any,
    model: Mapping[str, Any],
    *,
    study: Any = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """The JSONL record of one study from a ``StudyResult`` or ``StudyFailure``.

    Keys: ``study``, ``status`` (``"ok"`` / ``"error"``), ``outputs``, ``modalities``
    (``used`` / ``missing``), ``timing_ms``, ``model`` and, on error, ``error``
    (``type``, ``message``). The message is redacted of the study's UIDs and file paths.
    """
    raw: dict[str, Any] = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    status = "ok" if raw.get("status") == "ok" else "error"
    record: dict[str, Any] = {"study": key, "status": status}
    if status == "ok":
        record["outputs"] = {
            str(name): _output(out) for name, out in (raw.get("outputs") or {}).items()
        }
    modalities = raw.get("modalities") or {}
    record["modalities"] = {
        "used": [str(m) for m in modalities.get("used") or ()],
        "missing": [str(m) for m in modalities.get("missing") or ()],
    }
    timing = {
        str(k): round(float(v), 3) for k, v in (raw.get("timing_ms") or {}).items() if _finite(v)
    }
    if status == "ok" and "total" not in timing:
        # The study's own compute: its preprocessing worker call plus its share of inference.
        timing["total"] = round(timing.get("prepare", 0.0) + timing.get("inference", 0.0), 3)
    record["timing_ms"] = timing
    record["model"] = dict(model)
    if status != "ok":
        err = raw.get("error") or {}
        if not isinstance(err, Mapping):
            err = {"type": "Error", "message": str(err)}
        record["error"] = {
            "type": str(err.get("type") or "Error"),
            "message": redact(str(err.get("message") or ""), study=study, root=root),
        }
        if err.get("stage"):
            record["error"]["stage"] = str(err["stage"])
    return record


def _output(out: Mapping[str, Any]) -> dict[str, Any]:
    """One output of a session result → labels with probabilities, or values."""
    values = [round(float(v), 6) if _finite(v) else None for v in out.get("values") or ()]
    kind = str(out.get("kind") or "regression")
    if kind == "classification":
        labels = [str(x) for x in out.get("labels") or ()] or [str(i) for i in range(len(values))]
        top = out.get("top_label")
        score = out.get("top_score")
        return {
            "kind": kind,
            "top": None if top is None else str(top),
            "probability": round(float(score), 6)
            if isinstance(score, int | float) and _finite(score)
            else None,
            "probabilities": dict(zip(labels, values, strict=False)),
        }
    if len(values) == 1:
        return {"kind": kind, "value": values[0]}
    return {"kind": kind, "values": values}


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(float(v))


def redact(message: str, *, study: Any = None, root: Path | None = None) -> str:
    """Remove the study's UIDs and any input path (absolute, relative, long names) from ``message``."""
    if not message:
        return message
    needles: set[str] = set()
    if root is not None:
        needles.update({str(root), str(Path(root).resolve())})
    if study is not None:
        needles.add(str(getattr(study, "uid", "") or ""))
        for series in getattr(study, "series", ()):
            needles.add(str(getattr(series, "uid", "") or ""))
            needles.add(str(getattr(series, "frame_of_reference_uid", "") or ""))
            for inst in getattr(series, "instances", ()):
                needles.add(str(getattr(inst, "sop_instance_uid", "") or ""))
                path = getattr(inst, "path", None)
                if path is not None:
                    needles.update(_path_needles(Path(path), root))
    for needle in sorted((n for n in needles if len(n) >= 4), key=len, reverse=True):
        message = message.replace(needle, "[redacted]")
    return message


def _path_needles(path: Path, root: Path | None) -> Sequence[str]:
    """A file's absolute path, its path relative to the root, and its longer name parts."""
    out = [str(path)]
    rel: Iterable[str] = path.parts
    if root is not None:
        try:
            relative = path.relative_to(root)
        except ValueError:
            relative = path
        out.append(str(relative))
        rel = relative.parts
    out.extend(p for p in rel if len(p) >= 8)
    return out
