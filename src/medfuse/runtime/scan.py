"""``medfuse scan``: a dry run of screening — which series each study would feed, and why not.

The Python API behind ``medfuse scan``::

    from medfuse.runtime.scan import scan_studies
    summary = scan_studies("/data/incoming")
    print(summary.headline())   # "41 studies: 12 usable, 29 no usable input — 25 CT series …"

Discovery and series planning are the very code ``medfuse run`` uses
(:func:`~medfuse.runtime.dicom.discover_studies`, :func:`~medfuse.runtime.preprocess.plan_study`),
so a study scan calls usable is one run will try, with the same series. Headers only: no pixel is
decoded and no model is loaded (only the bundle's manifest). What scan cannot see is a series
that passes every header check but fails when its pixels are decoded; run then falls back to the
input's next candidate and says so in the record.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfuse.errors import UsageError
from medfuse.runtime.results import Provenance, study_status
from medfuse.runtime.screening import discover_or_explain, secret_from

__all__ = ["ScanSummary", "StudyScan", "scan_studies"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyScan:
    """One study as scan sees it: its key, ``usable`` / ``no_usable_input`` / ``error``, provenance."""

    study: str
    status: str
    provenance: Provenance

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "status": self.status,
            "provenance": self.provenance.to_json(),
            "warnings": [w.to_json() for w in self.provenance.warnings],
        }


@dataclass(frozen=True)
class ScanSummary:
    """What a scan found.

    Attributes
    ----------
    studies:
        One :class:`StudyScan` per study, in discovery order.
    by_status:
        ``usable`` / ``no_usable_input`` / ``error`` → studies.
    reasons:
        Over the studies that are not usable: ``"input: code"`` → studies.
    series_reasons:
        Over those studies' series: ``"MODALITY code"`` → series (e.g. ``"CT too_few_frames"``).
    warnings:
        Warning code → studies.
    skipped_files, files_seen:
        What discovery set aside, by reason, and the entries it looked at.
    elapsed_s:
        Wall time of the scan.
    """

    studies: tuple[StudyScan, ...]
    by_status: Mapping[str, int]
    reasons: Mapping[str, int]
    series_reasons: Mapping[str, int]
    warnings: Mapping[str, int]
    skipped_files: Mapping[str, int]
    files_seen: int
    elapsed_s: float
    model: Mapping[str, str] = field(default_factory=dict)

    def headline(self) -> str:
        """One line, e.g. ``41 studies: 12 usable, 29 no usable input — 25 CT series: too_few_frames``."""
        n = len(self.studies)
        parts = [
            f"{self.by_status.get(s, 0)} {label}"
            for s, label in (
                ("usable", "usable"),
                ("no_usable_input", "no usable input"),
                ("error", "error"),
            )
            if self.by_status.get(s, 0) or s == "usable"
        ]
        line = f"{n} stud{'y' if n == 1 else 'ies'}: {', '.join(parts)}"
        if self.series_reasons:
            what, count = next(iter(self.series_reasons.items()))
            modality, _, code = what.partition(" ")
            line += f" — {count} {modality} series: {code}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "headline": self.headline(),
            "studies_found": len(self.studies),
            "by_status": dict(self.by_status),
            "reasons": dict(self.reasons),
            "series_reasons": dict(self.series_reasons),
            "warnings": dict(self.warnings),
            "skipped_files": dict(self.skipped_files),
            "files_seen": self.files_seen,
            "elapsed_s": round(self.elapsed_s, 3),
            "model": dict(self.model),
        }


def scan_studies(
    studies_dir: str | Path,
    *,
    bundle: str | Path | None = None,
    key_secret_file: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScanSummary:
    """Plan every study under ``studies_dir`` for ``bundle``'s model, from headers only.

    Parameters
    ----------
    studies_dir:
        Folder of DICOM files (any nesting).
    bundle:
        Bundle directory or zip; ``None`` for the shipped reference bundle. Only its manifest
        is used (no model is loaded).
    key_secret_file:
        The study-key secret (the same keys as ``medfuse run``'s records).
    progress:
        Called as ``progress(done, total)`` over the files discovery reads (the long part).

    Raises
    ------
    UsageError
        ``studies_dir`` is not a folder.
    DicomError
        No DICOM study was found.
    BundleError
        The bundle cannot be opened.
    """
    from medfuse.bundle import open_bundle, reference_bundle_path
    from medfuse.runtime.preprocess import plan_study

    root = Path(studies_dir)
    if not root.is_dir():
        raise UsageError(
            "the studies folder does not exist or is not a folder; give a folder of DICOM files"
        )
    opened = open_bundle(bundle if bundle is not None else reference_bundle_path())
    spec = opened.spec
    secret = secret_from(key_secret_file)
    t0 = time.perf_counter()
    discovery = discover_or_explain(root, progress)
    scans: list[StudyScan] = []
    for study in discovery.studies:
        provenance = plan_study(study, spec).provenance()
        status = study_status(provenance)
        scans.append(
            StudyScan(study.key(secret), "usable" if status == "ok" else status, provenance)
        )
    not_usable = [s for s in scans if s.status != "usable"]
    series_reasons = Counter(
        f"{note.modality} {note.reason}"
        for s in not_usable
        for note in s.provenance.series
        if note.reason is not None and note.reason != "not_chosen"
    )
    return ScanSummary(
        studies=tuple(scans),
        by_status=dict(Counter(s.status for s in scans)),
        reasons=dict(
            Counter(
                f"{name}: {use.reason}"
                for s in not_usable
                for name, use in s.provenance.inputs.items()
                if not use.present
            ).most_common()
        ),
        series_reasons=dict(series_reasons.most_common()),
        warnings=dict(Counter(w.code for s in scans for w in s.provenance.warnings)),
        skipped_files={str(k): int(v) for k, v in discovery.skipped.items()},
        files_seen=discovery.files_seen,
        elapsed_s=time.perf_counter() - t0,
        model={"name": spec.name, "version": spec.version},
    )
