"""Typed outcomes of a session: per-output values, per-study outcomes, session and model info.

A study ends as one of three outcomes — :class:`StudyResult` (``ok``), :class:`StudyNotUsable`
(``no_usable_input``, or ``error`` when a fault emptied an input) or :class:`StudyFailure`
(``error``) — which :class:`medfuse.runtime.results.ResultRecord` turns into the record that
``medfuse run``, ``medfuse serve`` and the benchmarks write. Nothing here carries patient data: a
study is identified by its position in the input (``index``) and, when the session has a key
secret, by its pseudonymous key (:mod:`medfuse.runtime.results.keys`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import OutputSpec
from medfuse.bundle.units import OutputUnit
from medfuse.errors import ManifestError
from medfuse.runtime.results.provenance import Provenance

__all__ = [
    "ErrorInfo",
    "ModelInfo",
    "OutputResult",
    "SessionInfo",
    "StudyFailure",
    "StudyNotUsable",
    "StudyOutcome",
    "StudyResult",
    "apply_activation",
    "fault_error",
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
    raise ManifestError(f"unknown activation {activation!r}; expected softmax, sigmoid or identity")


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
    unit: OutputUnit | None = None
    volumes_ml: tuple[float, ...] | None = None
    mask: NDArray[np.uint8] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_row(
        cls,
        spec: OutputSpec,
        row: NDArray[Any],
        unit: OutputUnit | None = None,
        *,
        voxel_ml: float | None = None,
    ) -> OutputResult:
        """Build from one output row (copied out of the reused buffer); ``unit``: the
        output's unit from the spec (:func:`medfuse.bundle.units.output_units`).

        A ``segmentation`` output keeps per-class voxel fractions as ``values``, volumes in
        mL when ``voxel_ml`` (one voxel of the output grid) is known, and the label map as
        ``mask``; its logits are not kept (``raw`` is empty).
        """
        if spec.kind == "segmentation":
            from medfuse.runtime.results.segmentation import summarise_segmentation

            seg = summarise_segmentation(row, spec.activation, voxel_ml)
            return cls(
                name=spec.name,
                meaning=spec.meaning,
                kind=spec.kind,
                activation=spec.activation,
                labels=spec.labels,
                values=seg.fractions,
                raw=(),
                volumes_ml=seg.volumes_ml,
                mask=seg.label_map,
            )
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
            unit=unit if spec.kind != "classification" else None,
        )

    @property
    def in_unit(self) -> tuple[float | None, ...]:
        """The values in the output's unit (empty without one)."""
        return () if self.unit is None else tuple(self.unit.convert(v) for v in self.values)

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
        if self.volumes_ml is not None:
            d["volumes_ml"] = [_json_float(v) for v in self.volumes_ml]
        return d


@dataclass(frozen=True)
class ErrorInfo:
    """A PHI-free failure: the medfuse error class name (or ``InternalError``), its message, and
    the stage (``discovery``, ``read``, ``preprocess``, ``inference``).

    Make one with :func:`medfuse.runtime.results.redaction.error_info`, never by hand from an
    exception's text.
    """

    type: str
    message: str
    stage: str = "preprocess"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "stage": self.stage}


@dataclass(frozen=True)
class StudyResult:
    """A study the model ran on (status ``ok``: the presence rule was met).

    Attributes
    ----------
    index:
        Position of the study in the input of ``predict_many`` (0 for ``predict``).
    key:
        Pseudonymous study key, when the session was given a key secret.
    outputs:
        One :class:`OutputResult` per model output, by name.
    provenance:
        Which series fed which input, why the others did not, and warnings.
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
    provenance: Provenance
    timing_ms: Mapping[str, float] = field(default_factory=dict)
    batch_size: int = 1

    status: ClassVar[str] = "ok"
    ok: ClassVar[bool] = True

    @property
    def present(self) -> tuple[str, ...]:
        """Image inputs fed from a series."""
        return self.provenance.present

    @property
    def missing(self) -> tuple[str, ...]:
        """Optional image inputs left empty (zeros, presence 0)."""
        return self.provenance.missing

    @property
    def modalities_used(self) -> dict[str, str]:
        """Input name → Modality of the series that fed it."""
        return {n: u.modality for n, u in self.provenance.inputs.items() if u.present}


def _fault_types() -> dict[str, str]:
    from medfuse.errors import (
        CorruptDicomError,
        InconsistentSeriesError,
        MissingDecoderError,
        MixedPatientError,
        NonFiniteDataError,
        PixelDataLengthError,
    )

    return {
        "unreadable": CorruptDicomError.__name__,
        "pixel_length": PixelDataLengthError.__name__,
        "undecodable": MissingDecoderError.__name__,
        "mixed_modality": InconsistentSeriesError.__name__,
        "non_finite": NonFiniteDataError.__name__,
        "mixed_patient": MixedPatientError.__name__,
    }


def fault_error(provenance: Provenance) -> ErrorInfo | None:
    """The error of a study whose rule is unmet because of a fault (None when it is not).

    Its type is the medfuse error class of the fault, its message the empty input's reason
    (which names the series and, for a read failure, the error it raised).
    """
    if provenance.rule_met:
        return None
    types = _fault_types()
    for name, use in provenance.inputs.items():
        if not use.present and use.reason in types:
            return ErrorInfo(types[use.reason], f"input {name}: {use.detail}", "read")
    return None


def fault_exception(provenance: Provenance) -> BaseException | None:
    """The typed error of a fault the headers showed (see :func:`fault_error`), for callers
    that raise: e.g. a :class:`~medfuse.errors.PixelDataLengthError` for ``pixel_length``."""
    import medfuse.errors as errors

    info = fault_error(provenance)
    if info is None:
        return None
    cls = getattr(errors, info.type, errors.CorruptDicomError)
    if cls is errors.InconsistentSeriesError:
        reason = next(
            u.reason for u in provenance.inputs.values() if u.reason == "mixed_modality"
        )
        return errors.InconsistentSeriesError(info.message, reason)
    exc: BaseException = cls(info.message)
    return exc


@dataclass(frozen=True)
class StudyNotUsable:
    """A study that does not meet the model's presence rule: no outputs, only the reasons.

    ``provenance`` says which series the study holds and why none (or too few) could feed the
    model; :attr:`status` is ``no_usable_input``, or ``error`` when a fault (an unreadable file,
    pixel data of the wrong length, a missing decoder) left an input empty — then ``error``
    describes the first such fault (:func:`fault_error`; the same rule as
    :func:`~medfuse.runtime.results.provenance.study_status`).
    """

    index: int
    key: str | None
    provenance: Provenance
    error: ErrorInfo | None = None
    timing_ms: Mapping[str, float] = field(default_factory=dict)
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    ok: ClassVar[bool] = False

    @property
    def status(self) -> str:
        return "error" if self.error is not None else "no_usable_input"


@dataclass(frozen=True)
class StudyFailure:
    """A study that failed outside series selection (inference, an internal error); the run goes on.

    ``error`` is PHI-free (:func:`medfuse.runtime.results.redaction.error_info`); ``provenance``
    is given when the failure came after the series were chosen. ``exception`` keeps the
    original for callers (never serialised).
    """

    index: int
    key: str | None
    error: ErrorInfo
    provenance: Provenance | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    status: ClassVar[str] = "error"
    ok: ClassVar[bool] = False

    @property
    def error_type(self) -> str:
        return self.error.type

    @property
    def message(self) -> str:
        return self.error.message

    @property
    def stage(self) -> str:
        return self.error.stage


StudyOutcome = StudyResult | StudyNotUsable | StudyFailure


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced a result: name, version, variant, backend, device."""

    name: str = ""
    version: str = ""
    variant: str = ""
    backend: str = ""
    device: str = ""

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> ModelInfo:
        d = d or {}
        return cls(
            **{
                k: str(d[k])
                for k in ("name", "version", "variant", "backend", "device")
                if d.get(k)
            }
        )


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

    def model_info(self) -> ModelInfo:
        """The model identity a result record carries."""
        return ModelInfo(
            name=self.model_name,
            version=self.model_version,
            variant=self.precision,
            backend=self.backend,
            device=self.device,
        )

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
