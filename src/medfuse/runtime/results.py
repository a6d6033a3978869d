"""Typed results of a session: per-output values with labels, per-study outcomes, session info.

Everything here serialises to plain JSON via ``to_dict()`` and carries no patient data: a
study is identified by its position in the input (``index``) and, when the session has a key
secret, by its pseudonymous key (HMAC of the StudyInstanceUID, :mod:`medfuse.runtime.keys`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import OutputSpec

__all__ = [
    "OutputResult",
    "SessionInfo",
    "StudyFailure",
    "StudyOutcome",
    "StudyResult",
    "apply_activation",
]


def apply_activation(values: NDArray[Any], activation: str) -> NDArray[np.float64]:
    """Apply an output's activation over the last axis: ``softmax``, ``sigmoid`` or ``identity``.

    Computed in float64, numerically stable (softmax subtracts the max; sigmoid splits by sign).
    """
    x = np.asarray(values, dtype=np.float64)
    if activation == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        out: NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
        return out
    if activation == "sigmoid":
        pos = x >= 0
        z = np.exp(-np.abs(x))
        return np.where(pos, 1.0 / (1.0 + z), z / (1.0 + z))
    if activation == "identity":
        return x
    raise ValueError(f"unknown activation {activation!r}; expected softmax, sigmoid or identity")


@dataclass(frozen=True)
class OutputResult:
    """One model output for one study.

    ``values`` are after the output's activation (probabilities for softmax / sigmoid,
    values for identity); ``raw`` are the model's numbers before it (logits).
    """

    name: str
    meaning: str
    kind: str
    activation: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    raw: tuple[float, ...]

    @classmethod
    def from_row(cls, spec: OutputSpec, row: NDArray[Any]) -> OutputResult:
        """Build from one output row (copied out of the reused buffer)."""
        flat = np.asarray(row, dtype=np.float64).reshape(-1)
        act = apply_activation(flat, spec.activation) if flat.size else flat
        return cls(
            name=spec.name,
            meaning=spec.meaning,
            kind=spec.kind,
            activation=spec.activation,
            labels=spec.labels,
            values=tuple(float(v) for v in act),
            raw=tuple(float(v) for v in flat),
        )

    @property
    def top_index(self) -> int | None:
        """Index of the largest value (classification outputs), else ``None``."""
        if self.kind != "classification" or not self.values:
            return None
        return int(np.argmax(self.values))

    @property
    def top_label(self) -> str | None:
        """Label of the largest value (its index as text when the output has no labels)."""
        i = self.top_index
        if i is None:
            return None
        return self.labels[i] if self.labels else str(i)

    @property
    def top_score(self) -> float | None:
        i = self.top_index
        return None if i is None else self.values[i]

    def by_label(self) -> dict[str, float]:
        """Values keyed by class label (or index)."""
        names = self.labels or tuple(str(i) for i in range(len(self.values)))
        return dict(zip(names, self.values, strict=True))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "meaning": self.meaning,
            "kind": self.kind,
            "activation": self.activation,
            "labels": list(self.labels),
            "values": [_json_float(v) for v in self.values],
            "raw": [_json_float(v) for v in self.raw],
        }
        if self.kind == "classification":
            d["top_label"] = self.top_label
            d["top_score"] = None if self.top_score is None else _json_float(self.top_score)
        return d


@dataclass(frozen=True)
class StudyResult:
    """A study the model ran on.

    Attributes
    ----------
    index:
        Position of the study in the input of ``predict_many`` (0 for ``predict``).
    key:
        Pseudonymous study key, when the session was given a key secret.
    outputs:
        One :class:`OutputResult` per model output, by name.
    present, missing:
        Image inputs fed from the study, and optional ones absent (fed zeros, presence 0).
    modalities_used:
        Input name → DICOM modality of the series that fed it (present inputs only).
    missing_modalities:
        The modalities the missing inputs would have taken.
    timing_ms:
        ``read`` and ``preprocess`` (this study, from preprocessing), ``prepare`` (its whole
        worker call, wall clock), ``inference`` (its share: batch time / batch size) and
        ``inference_batch`` (the whole batch's call).
    batch_size:
        Studies in the inference call that ran this one.
    """

    index: int
    key: str | None
    outputs: Mapping[str, OutputResult]
    present: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    modalities_used: Mapping[str, str] = field(default_factory=dict)
    missing_modalities: tuple[str, ...] = ()
    timing_ms: Mapping[str, float] = field(default_factory=dict)
    batch_size: int = 1
    ok: Literal[True] = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "status": "ok",
            "outputs": {k: v.to_dict() for k, v in self.outputs.items()},
            "modalities": {
                "used": list(dict.fromkeys(self.modalities_used.values())),
                "missing": list(self.missing_modalities),
            },
            "inputs": {
                "present": list(self.present),
                "missing": list(self.missing),
                "modality": dict(self.modalities_used),
            },
            "timing_ms": {k: round(float(v), 3) for k, v in self.timing_ms.items()},
            "batch_size": self.batch_size,
        }


@dataclass(frozen=True)
class StudyFailure:
    """A study that could not be run; the rest of the batch run goes on.

    ``error_type`` is the medfuse error class name (``StudyError``, ``DicomError``, …) and
    ``message`` its PHI-free message; ``stage`` is ``"preprocess"`` or ``"inference"``.
    ``exception`` keeps the original for callers (not serialised).
    """

    index: int
    key: str | None
    error_type: str
    message: str
    stage: str = "preprocess"
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    ok: Literal[False] = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "key": self.key,
            "status": "error",
            "error": {"type": self.error_type, "message": self.message, "stage": self.stage},
        }


StudyOutcome = StudyResult | StudyFailure


@dataclass(frozen=True)
class SessionInfo:
    """What a session runs and why it was chosen."""

    model_name: str
    model_version: str
    backend: str
    device: str
    precision: str
    model_file: str
    model_sha256: str | None
    providers: tuple[str, ...]
    reason: str
    threads: int | None
    graph_optimization: str
    max_batch: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.model_name,
            "version": self.model_version,
            "backend": self.backend,
            "device": self.device,
            "variant": self.precision,
            "model_file": self.model_file,
            "model_sha256": self.model_sha256,
            "providers": list(self.providers),
            "reason": self.reason,
            "threads": self.threads,
            "graph_optimization": self.graph_optimization,
            "max_batch": self.max_batch,
        }


def _json_float(v: float) -> float | None:
    """JSON has no NaN/inf: map them to null."""
    return v if math.isfinite(v) else None
