"""Calibration and held-out data from DICOM studies, through the runtime's own preprocessing.

:class:`DicomCalibrationReader` has ONNX Runtime's ``CalibrationDataReader`` interface
(``get_next()`` → one feed dict or ``None``): it preprocesses one study at a time with
:func:`medfuse.runtime.preprocess.preprocess_study` — the tensors a device would compute — so the
set is streamed, never held in memory. It hashes what it yields: sha256 over the study keys (in
sorted order) and the tensor bytes, the set's identity in the manifest; never its contents.

Study keys here are HMACs of the StudyInstanceUID under a fixed, public calibration secret, so
the same studies give the same set hash on every machine; they are only ever hashed or compared
in memory, never written or logged.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import CalibrationError, DicomError, PreprocessingError, StudyError
from medfuse.runtime.dicom import Study, discover_studies
from medfuse.runtime.preprocess import preprocess_study
from medfuse.runtime.results.keys import load_or_create_secret, study_key

__all__ = [
    "CALIBRATION_SECRET",
    "DicomCalibrationReader",
    "HeldoutSet",
    "ReaderStats",
    "StudySet",
    "input_buffers",
    "load_heldout",
    "prepare_feed",
    "scan_studies",
]

logger = logging.getLogger(__name__)

CALIBRATION_SECRET = b"medfuse-calibration-set-identity-v1"
"""Public secret of the keys that order and hash a calibration set (stable across machines)."""


@dataclass(frozen=True)
class StudySet:
    """Studies found under a folder (headers only), in calibration-key order."""

    studies: tuple[Study, ...]
    keys: tuple[str, ...]
    fingerprint: str
    skipped_files: int = 0

    def __len__(self) -> int:
        return len(self.studies)


def _file_stats(study: Study) -> Iterator[str]:
    for series in study.series:
        yield f"{series.modality}:{len(series.instances)}"
        for inst in series.instances:
            try:
                st = inst.path.stat()
                yield f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                yield "?"


def scan_studies(root: Path, spec: ModelSpec, *, limit: int | None = None) -> StudySet:
    """Discover the studies under ``root`` (headers only) and order them by calibration key.

    The ``fingerprint`` (sha256 over the keys, file sizes and times, the recipes and
    ``limit``) tells whether a cached calibration of this folder is still valid without
    reading any pixel.
    """
    discovery = discover_studies(root)
    pairs = sorted(
        ((study_key(s.uid, CALIBRATION_SECRET), s) for s in discovery.studies),
        key=lambda p: p[0],
    )
    if limit is not None:
        pairs = pairs[:limit]
    digest = hashlib.sha256()
    digest.update(repr([i.to_dict() for i in spec.inputs]).encode())
    digest.update(f"limit={limit}".encode())
    for key, study in pairs:
        digest.update(key.encode())
        for item in _file_stats(study):
            digest.update(item.encode())
    logger.info(
        "found %d stud(ies) (%d file(s) skipped)", len(discovery.studies), discovery.n_skipped
    )
    return StudySet(
        studies=tuple(s for _, s in pairs),
        keys=tuple(k for k, _ in pairs),
        fingerprint=digest.hexdigest(),
        skipped_files=discovery.n_skipped,
    )


def input_buffers(spec: ModelSpec) -> dict[str, NDArray[np.float32]]:
    """One zeroed sample buffer per input (no batch axis), for :func:`prepare_feed`."""
    return {i.name: np.zeros(i.sample_shape(), dtype=np.float32) for i in spec.inputs}


@dataclass
class ReaderStats:
    """What a reader did: studies used and skipped, inputs missing per name."""

    used: int = 0
    skipped_unusable: int = 0
    missing_inputs: Counter[str] = field(default_factory=Counter)
    reads: int = 0


class DicomCalibrationReader:
    """ONNX Runtime ``CalibrationDataReader`` over DICOM studies (one study per ``get_next``).

    Parameters
    ----------
    studies:
        The studies, from :func:`scan_studies`.
    spec:
        The model spec: every input is filled, the presence mask from the study.

    Notes
    -----
    A study missing an optional modality is used (its input zeroed, presence 0) and counted in
    ``stats.missing_inputs``; a study with no usable image input, a missing required one, or
    unreadable files is skipped and counted in ``stats.skipped_unusable``.
    """

    def __init__(self, studies: StudySet, spec: ModelSpec) -> None:
        self._set = studies
        self._spec = spec
        self._bufs = input_buffers(spec)
        self._iter = iter(zip(studies.keys, studies.studies, strict=True))
        self._digest = hashlib.sha256()
        self.stats = ReaderStats()
        self.samples: list[dict[str, NDArray[np.float32]]] = []
        self.keep_samples = 0

    def get_next(self) -> dict[str, NDArray[np.float32]] | None:
        """The next study's feed (batch of 1 per input), or ``None`` when the set is done."""
        for key, study in self._iter:
            feed = prepare_feed(study, self._spec, self._bufs, self.stats)
            if feed is None:
                continue
            self._digest.update(key.encode())
            for inp in self._spec.inputs:
                self._digest.update(feed[inp.name].tobytes())
            if len(self.samples) < self.keep_samples:
                self.samples.append({k: v.copy() for k, v in feed.items()})
            return feed
        return None

    def __iter__(self) -> Iterator[dict[str, NDArray[np.float32]]]:
        while (feed := self.get_next()) is not None:
            yield feed

    @property
    def set_hash(self) -> str:
        """sha256 over the used studies' keys and tensor bytes (complete after exhaustion)."""
        return self._digest.hexdigest()


def prepare_feed(
    study: Study,
    spec: ModelSpec,
    bufs: dict[str, NDArray[np.float32]],
    stats: ReaderStats,
) -> dict[str, NDArray[np.float32]] | None:
    """Preprocess one study into ``bufs``; a feed with a batch axis, or ``None`` if unusable."""
    stats.reads += 1
    try:
        prepared = preprocess_study(study, spec, bufs)
    except (StudyError, DicomError, PreprocessingError) as exc:
        stats.skipped_unusable += 1
        logger.info("study skipped for calibration: %s", type(exc).__name__)
        return None
    if not prepared.present:
        stats.skipped_unusable += 1
        logger.info("study skipped for calibration: no image input present")
        return None
    stats.used += 1
    stats.missing_inputs.update(prepared.missing)
    return {i.name: bufs[i.name][None].copy() for i in spec.inputs}


@dataclass(frozen=True)
class HeldoutSet:
    """Held-out studies preprocessed for the gate, with labels where ``labels.csv`` has them."""

    feeds: dict[str, NDArray[np.float32]]
    diagnosis: NDArray[np.int64] | None
    severity: NDArray[np.float64] | None
    keys: tuple[str, ...]
    stats: ReaderStats

    @property
    def n(self) -> int:
        return 0 if not self.feeds else int(next(iter(self.feeds.values())).shape[0])


def _read_labels(root: Path) -> dict[str, tuple[str, float]]:
    path = root / "labels.csv"
    if not path.is_file():
        return {}
    out: dict[str, tuple[str, float]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                out[row["study"]] = (row["diagnosis"], float(row["severity"]))
            except (KeyError, ValueError) as exc:
                raise CalibrationError(
                    "labels.csv of the held-out folder is malformed; expected columns "
                    "study,diagnosis,severity"
                ) from exc
    return out


def load_heldout(
    root: Path, spec: ModelSpec, *, calibration_keys: Sequence[str], class_labels: Sequence[str]
) -> HeldoutSet:
    """Preprocess every held-out study and join its labels.

    Raises
    ------
    CalibrationError
        A held-out study is also in the calibration set, or no held-out study is usable.
    """
    found = scan_studies(root, spec)
    overlap = set(found.keys) & set(calibration_keys)
    if overlap:
        raise CalibrationError(
            f"{len(overlap)} held-out stud(ies) are also in the calibration set; the held-out "
            "set must be disjoint from it (use separate folders)"
        )
    labels = _read_labels(root)
    secret: bytes | None = None
    if labels and (root / "labels.key").is_file():
        secret = load_or_create_secret(root / "labels.key")
    stats = ReaderStats()
    bufs = input_buffers(spec)
    feeds: list[dict[str, NDArray[np.float32]]] = []
    diag: list[int] = []
    sev: list[float] = []
    have_labels = secret is not None
    for _key, study in zip(found.keys, found.studies, strict=True):
        feed = prepare_feed(study, spec, bufs, stats)
        if feed is None:
            continue
        feeds.append(feed)
        if secret is not None:
            row = labels.get(study_key(study.uid, secret))
            if row is None or row[0] not in class_labels:
                have_labels = False
            else:
                diag.append(class_labels.index(row[0]))
                sev.append(row[1])
    if not feeds:
        raise CalibrationError(
            f"no usable held-out study among {len(found)} found; give a folder of studies with "
            "at least one modality the model takes"
        )
    merged = {i.name: np.concatenate([f[i.name] for f in feeds]) for i in spec.inputs}
    if not have_labels and labels:
        logger.warning("held-out labels do not cover every study; AUROC and MAE are not computed")
    return HeldoutSet(
        feeds=merged,
        diagnosis=np.asarray(diag, dtype=np.int64) if have_labels else None,
        severity=np.asarray(sev, dtype=np.float64) if have_labels else None,
        keys=found.keys,
        stats=stats,
    )


def feed_slices(feeds: dict[str, NDArray[Any]], batch: int) -> Iterator[dict[str, NDArray[Any]]]:
    """Split stacked feeds into batches of at most ``batch``."""
    n = int(next(iter(feeds.values())).shape[0])
    for start in range(0, n, batch):
        yield {k: v[start : start + batch] for k, v in feeds.items()}
