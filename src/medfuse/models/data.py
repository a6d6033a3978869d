"""Labelled study sets for training: DICOM folder → the runtime's own preprocessing → arrays.

Every study goes through :func:`medfuse.runtime.preprocess.preprocess_study` — the function
the device runs — so the network trains on exactly the tensors it will see deployed. The
result is cached once per folder and spec as an ``.npz`` (image tensors stored as float16:
a relative rounding of at most 2**-11, far below what the network resolves), named by a hash
of the spec's recipes and the study keys, never by anything from the DICOM files.

Labels come from the folder's ``labels.csv`` (``study,diagnosis,severity,modalities``) keyed
by :func:`medfuse.runtime.results.keys.study_key` with the secret in ``labels.key``, as
``medfuse synth`` writes them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import DicomError, PreprocessingError, StudyError, UsageError
from medfuse.runtime.dicom import discover_studies
from medfuse.runtime.preprocess import preprocess_study
from medfuse.runtime.results.keys import load_or_create_secret

__all__ = ["LABELS_CSV", "LABELS_KEY", "StudySet", "load_labels", "prepare_studies"]

logger = logging.getLogger(__name__)

LABELS_CSV = "labels.csv"
LABELS_KEY = "labels.key"
_CACHE_VERSION = 1

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class StudySet:
    """Preprocessed, labelled studies: one row per study, in a stable order (by study key).

    ``inputs`` maps every spec input to an array with the batch axis first (images float16,
    presence float32); ``diagnosis`` holds class indices, ``severity_ml`` lesion burden in mL.
    """

    keys: tuple[str, ...]
    inputs: dict[str, NDArray[np.generic]]
    diagnosis: NDArray[np.int64]
    severity_ml: NDArray[np.float32]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, index: NDArray[np.int64]) -> StudySet:
        """The rows ``index`` as a new set."""
        return StudySet(
            keys=tuple(self.keys[i] for i in index),
            inputs={k: v[index] for k, v in self.inputs.items()},
            diagnosis=self.diagnosis[index],
            severity_ml=self.severity_ml[index],
        )


def load_labels(root: Path, classes: Sequence[str]) -> dict[str, tuple[int, float]]:
    """Read ``root/labels.csv``: study key → (class index, severity in mL)."""
    path = Path(root) / LABELS_CSV
    if not path.is_file():
        raise UsageError(
            f"no {LABELS_CSV} in the studies folder; training needs labelled studies "
            "(create them with `medfuse synth`)"
        )
    labels: dict[str, tuple[int, float]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"study", "diagnosis", "severity"} - set(reader.fieldnames or ())
        if missing:
            raise UsageError(f"{LABELS_CSV}: columns {sorted(missing)} are missing")
        for line, row in enumerate(reader, start=2):
            if row["diagnosis"] not in classes:
                raise UsageError(
                    f"{LABELS_CSV} line {line}: diagnosis {row['diagnosis']!r} is not one of {list(classes)}"
                )
            try:
                severity = float(row["severity"])
            except ValueError as exc:
                raise UsageError(
                    f"{LABELS_CSV} line {line}: severity {row['severity']!r} is not a number"
                ) from exc
            labels[row["study"]] = (classes.index(row["diagnosis"]), severity)
    return labels


def _cache_path(cache_dir: Path, spec: ModelSpec, keys: Sequence[str]) -> Path:
    recipe = json.dumps([i.to_dict() for i in spec.inputs], sort_keys=True)
    digest = hashlib.sha256(
        f"{_CACHE_VERSION}\n{recipe}\n{','.join(sorted(keys))}".encode()
    ).hexdigest()
    return cache_dir / f"studies-{digest[:20]}.npz"


def _load_cache(path: Path, spec: ModelSpec) -> StudySet | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return StudySet(
                keys=tuple(str(k) for k in z["__keys"]),
                inputs={i.name: z[i.name] for i in spec.inputs},
                diagnosis=z["__diagnosis"].astype(np.int64),
                severity_ml=z["__severity_ml"].astype(np.float32),
                skipped=int(z["__skipped"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        logger.warning(
            "ignoring unreadable study cache (%s); preprocessing again", type(exc).__name__
        )
        return None


def prepare_studies(
    root: Path,
    spec: ModelSpec,
    classes: Sequence[str],
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> StudySet:
    """Discover, label and preprocess every study under ``root`` (cached).

    Parameters
    ----------
    root:
        A folder of studies with ``labels.csv`` and ``labels.key`` (``medfuse synth`` output).
    spec:
        The model spec whose recipes preprocess the studies.
    classes:
        Class names, in the order of the diagnosis output.
    cache_dir:
        Where the preprocessed arrays are cached (none when omitted).
    progress:
        Called as ``progress(done, total)`` after each study.

    Returns
    -------
    StudySet
        Studies with a label that preprocessed cleanly; ``skipped`` counts the others.

    Raises
    ------
    UsageError
        No labels file, or no usable study at all.
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError("the studies folder does not exist or is not a folder")
    labels = load_labels(root, classes)
    secret = load_or_create_secret(root / LABELS_KEY)
    start = time.perf_counter()
    found = discover_studies(root)
    studies = sorted(((s.key(secret), s) for s in found.studies), key=lambda ks: ks[0])
    labelled = [(k, s) for k, s in studies if k in labels]
    unlabelled = len(studies) - len(labelled)
    if not labelled:
        raise UsageError(
            f"none of the {len(studies)} studies found has a row in {LABELS_CSV} (was labels.key "
            "replaced?); regenerate the folder with `medfuse synth`"
        )
    cache = (
        _cache_path(cache_dir, spec, [k for k, _ in labelled]) if cache_dir is not None else None
    )
    if cache is not None and cache.is_file():
        cached = _load_cache(cache, spec)
        if cached is not None:
            logger.info("loaded %d preprocessed studies from the cache", len(cached))
            return cached
    n = len(labelled)
    arrays: dict[str, NDArray[np.generic]] = {
        i.name: np.zeros(i.batch_shape(n), dtype=np.float32 if i.role == "presence" else np.float16)
        for i in spec.inputs
    }
    sample = {i.name: np.zeros(i.sample_shape(), dtype=np.float32) for i in spec.inputs}
    keep: list[int] = []
    failed = 0
    for row, (_key, study) in enumerate(labelled):
        try:
            preprocess_study(study, spec, sample)
        except (DicomError, PreprocessingError, StudyError) as exc:
            failed += 1
            logger.warning("study #%d skipped: %s", row + 1, type(exc).__name__)
        else:
            if float(sample[spec.presence_input.name].sum() if spec.presence_input else 1.0) > 0:
                for name, value in sample.items():
                    arrays[name][row] = value
                keep.append(row)
            else:
                failed += 1
        if progress is not None:
            progress(row + 1, n)
    index = np.asarray(keep, dtype=np.int64)
    result = StudySet(
        keys=tuple(labelled[i][0] for i in index),
        inputs={k: v[index] for k, v in arrays.items()},
        diagnosis=np.asarray([labels[labelled[i][0]][0] for i in index], dtype=np.int64),
        severity_ml=np.asarray([labels[labelled[i][0]][1] for i in index], dtype=np.float32),
        skipped=failed + unlabelled,
    )
    logger.info(
        "preprocessed %d studies (%d skipped) in %.1f s",
        len(result),
        result.skipped,
        time.perf_counter() - start,
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            __keys=np.asarray(result.keys),
            __diagnosis=result.diagnosis,
            __severity_ml=result.severity_ml,
            __skipped=np.asarray(result.skipped),
            **result.inputs,  # type: ignore[arg-type]
        )
        tmp.replace(cache)
    return result
