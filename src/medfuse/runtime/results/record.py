"""The one result record: what ``medfuse run`` writes per study, ``medfuse serve`` answers, and
the benchmarks and tests read back.

A :class:`ResultRecord` is made from a session's outcome (:meth:`ResultRecord.from_outcome`),
written as one JSON line (:meth:`ResultRecord.to_json`) and read back typed
(:meth:`ResultRecord.from_json`). JSON appears only at the file (or wire) boundary.

Record format, ``"schema": 2`` (``docs/decisions.md``, "Result records")::

    {"schema": 2, "study": KEY, "status": "ok" | "no_usable_input" | "error",
     "outputs": {...},                      # "ok" only
     "modalities": {"used": [...], "missing": [...]},
     "provenance": {"rule": {...}, "inputs": {...}, "series": [...], "unreadable_nearby": n},
     "warnings": [{"code", "count", "detail", "input"?}],
     "reasons": [{"input", "code", "detail"}],   # not "ok": why each input is empty
     "error": {"type", "message", "stage"},  # "error" only
     "timing_ms": {...}, "model": {...}}

A record is ``ok`` only with outputs and a provenance whose presence rule is met; anything
else is refused when the record is made, so no code path can write a diagnosis that rests on
nothing. Records of schema 1 (no ``schema`` field, written before provenance existed) are read
for ``--resume`` and the CSV, never written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from medfuse.errors import UsageError
from medfuse.runtime.results.outcomes import (
    ErrorInfo,
    ModelInfo,
    OutputResult,
    StudyFailure,
    StudyNotUsable,
    StudyOutcome,
    StudyResult,
)
from medfuse.runtime.results.provenance import Notice, Provenance

__all__ = ["SCHEMA", "STATUSES", "OutputRecord", "Reason", "ResultRecord"]

SCHEMA = 2
STATUSES = ("ok", "no_usable_input", "error")


def _num(v: Any) -> float | None:
    """A finite float rounded to 6 digits, or None (JSON has no NaN)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        return None
    return round(float(v), 6)


@dataclass(frozen=True)
class OutputRecord:
    """One model output of a record: the top class and probabilities, or the value(s)."""

    kind: str
    top: str | None = None
    probability: float | None = None
    probabilities: Mapping[str, float | None] = field(default_factory=dict)
    values: tuple[float | None, ...] = ()
    unit: str | None = None
    in_unit: tuple[float | None, ...] = ()
    fractions: Mapping[str, float | None] = field(default_factory=dict)
    volumes_ml: Mapping[str, float | None] | None = None

    @property
    def value(self) -> float | None:
        """The value of a one-number output (regression), else None."""
        return self.values[0] if len(self.values) == 1 else None

    @property
    def value_in_unit(self) -> float | None:
        """The one-number output in its unit (:attr:`unit`), else None."""
        return self.in_unit[0] if len(self.in_unit) == 1 else None

    @classmethod
    def from_result(cls, out: OutputResult) -> OutputRecord:
        values = tuple(_num(v) for v in out.values)
        if out.kind == "classification":
            labels = out.labels or tuple(str(i) for i in range(len(values)))
            top = out.top_label
            return cls(
                kind=out.kind,
                top=top,
                probability=_num(out.top_score),
                probabilities=dict(zip(labels, values, strict=False)),
            )
        if out.kind == "segmentation":
            labels = out.labels or tuple(str(i) for i in range(len(values)))
            vols = out.volumes_ml
            return cls(
                kind=out.kind,
                fractions=dict(zip(labels, values, strict=False)),
                volumes_ml=None
                if vols is None
                else dict(zip(labels, (_num(v) for v in vols), strict=False)),
            )
        return cls(
            kind=out.kind,
            values=values,
            unit=None if out.unit is None else out.unit.unit,
            in_unit=tuple(_num(v) for v in out.in_unit),
        )

    def to_json(self) -> dict[str, Any]:
        if self.kind == "segmentation":
            seg: dict[str, Any] = {"kind": self.kind, "fractions": dict(self.fractions)}
            if self.volumes_ml is not None:
                seg["volumes_ml"] = dict(self.volumes_ml)
            return seg
        if self.kind == "classification":
            return {
                "kind": self.kind,
                "top": self.top,
                "probability": self.probability,
                "probabilities": dict(self.probabilities),
            }
        d: dict[str, Any] = {"kind": self.kind}
        if len(self.values) == 1:
            d["value"] = self.values[0]
        else:
            d["values"] = list(self.values)
        if self.unit is not None:
            d["unit"] = self.unit
            if len(self.in_unit) == 1:
                d["value_in_unit"] = self.in_unit[0]
            else:
                d["values_in_unit"] = list(self.in_unit)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> OutputRecord:
        kind = str(d.get("kind") or "regression")
        if kind == "segmentation":
            fr = d.get("fractions")
            vols = d.get("volumes_ml")
            return cls(
                kind=kind,
                fractions={str(k): _num(v) for k, v in fr.items()} if isinstance(fr, Mapping) else {},
                volumes_ml={str(k): _num(v) for k, v in vols.items()}
                if isinstance(vols, Mapping)
                else None,
            )
        if isinstance(d.get("probabilities"), Mapping):
            probs = {str(k): _num(v) for k, v in d["probabilities"].items()}
            top = d.get("top")
            if top is None and probs:
                top = max(probs, key=lambda k: probs[k] or -1.0)
            return cls(
                kind="classification",
                top=None if top is None else str(top),
                probability=_num(d.get("probability")),
                probabilities=probs,
            )
        unit = d.get("unit")
        if "value_in_unit" in d:
            in_unit: tuple[float | None, ...] = (_num(d["value_in_unit"]),)
        else:
            in_unit = tuple(_num(v) for v in d.get("values_in_unit") or ())
        if "value" in d:
            values: tuple[float | None, ...] = (_num(d["value"]),)
        else:
            values = tuple(_num(v) for v in d.get("values") or ())
        return cls(
            kind=kind,
            values=values,
            unit=str(unit) if isinstance(unit, str) else None,
            in_unit=in_unit if isinstance(unit, str) else (),
        )


@dataclass(frozen=True)
class Reason:
    """Why one image input is empty in a study without a result."""

    input: str
    code: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"input": self.input, "code": self.code, "detail": self.detail}


@dataclass(frozen=True)
class ResultRecord:
    """One study's result, as written to ``results.jsonl`` and answered by ``medfuse serve``.

    Attributes
    ----------
    study:
        Pseudonymous study key (None when the study could not even be identified).
    status:
        ``ok``, ``no_usable_input`` or ``error``.
    model:
        Which model produced it.
    outputs:
        Output name → :class:`OutputRecord` (``ok`` only).
    provenance:
        What the result rests on (None only for a payload that held no study, and in schema-1
        records).
    error:
        The PHI-free failure (``error`` only).
    timing_ms:
        Per-stage milliseconds of this study.
    schema:
        Record format version.

    Raises
    ------
    UsageError
        When made inconsistent: ``ok`` without outputs or without a met presence rule, outputs
        on a record that is not ``ok``, or ``error`` without an error.
    """

    study: str | None
    status: str
    model: ModelInfo = field(default_factory=ModelInfo)
    outputs: Mapping[str, OutputRecord] = field(default_factory=dict)
    provenance: Provenance | None = None
    error: ErrorInfo | None = None
    timing_ms: Mapping[str, float] = field(default_factory=dict)
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise UsageError(f"record status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.status == "ok":
            legacy = self.schema < 2 and self.provenance is None
            if not self.outputs or not (
                legacy or (self.provenance is not None and self.provenance.rule_met)
            ):
                raise UsageError(
                    "an 'ok' record needs outputs and a provenance whose presence rule is met"
                )
        elif self.outputs:
            raise UsageError(f"a {self.status!r} record carries no outputs")
        if self.status == "error" and self.error is None:
            raise UsageError("an 'error' record needs its error")

    # -- made from a session outcome ----------------------------------------------------------

    @classmethod
    def from_outcome(cls, key: str | None, outcome: StudyOutcome, model: ModelInfo) -> ResultRecord:
        """The record of one session outcome, keyed ``key``."""
        timing = {str(k): round(float(v), 3) for k, v in outcome_timing(outcome).items()}
        if isinstance(outcome, StudyResult):
            if "total" not in timing:
                # the study's own compute: its preprocessing worker call plus its inference share
                timing["total"] = round(
                    timing.get("prepare", 0.0) + timing.get("inference", 0.0), 3
                )
            return cls(
                study=key,
                status="ok",
                model=model,
                outputs={n: OutputRecord.from_result(o) for n, o in outcome.outputs.items()},
                provenance=outcome.provenance,
                timing_ms=timing,
            )
        if isinstance(outcome, StudyNotUsable):
            return cls(
                study=key,
                status=outcome.status,
                model=model,
                provenance=outcome.provenance,
                error=outcome.error,
                timing_ms=timing,
            )
        assert isinstance(outcome, StudyFailure)
        return cls(
            study=key,
            status="error",
            model=model,
            provenance=outcome.provenance,
            error=outcome.error,
            timing_ms=timing,
        )

    # -- derived views ------------------------------------------------------------------------

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def warnings(self) -> tuple[Notice, ...]:
        """What was dropped or degraded (empty when there is no provenance)."""
        return self.provenance.warnings if self.provenance is not None else ()

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """Why each empty input is empty, for a record without a result (empty for ``ok``)."""
        if self.ok or self.provenance is None:
            return ()
        return tuple(
            Reason(name, use.reason or "no_series", use.detail)
            for name, use in self.provenance.inputs.items()
            if not use.present
        )

    @property
    def modalities_used(self) -> tuple[str, ...]:
        """Modalities of the series that fed an input (``ok`` records)."""
        if self.provenance is None:
            return ()
        seen = [u.modality for u in self.provenance.inputs.values() if u.present]
        return tuple(dict.fromkeys(seen))

    @property
    def modalities_missing(self) -> tuple[str, ...]:
        """Modalities the empty inputs take."""
        if self.provenance is None:
            return ()
        return tuple(u.modality for u in self.provenance.inputs.values() if not u.present)

    def classification(self) -> OutputRecord | None:
        """The first classification output."""
        return next((o for o in self.outputs.values() if o.kind == "classification"), None)

    @property
    def top_class(self) -> str | None:
        out = self.classification()
        return None if out is None else out.top

    @property
    def probability(self) -> float | None:
        out = self.classification()
        return None if out is None else out.probability

    def _severity_output(self) -> OutputRecord | None:
        ordered = sorted(self.outputs.items(), key=lambda kv: kv[0] != "severity")
        for _name, out in ordered:
            if out.kind != "classification" and out.values and out.values[0] is not None:
                return out
        return None

    @property
    def severity(self) -> float | None:
        """The ``severity`` output's model value (else the first one-number output's)."""
        out = self._severity_output()
        return None if out is None else out.values[0]

    @property
    def severity_unit(self) -> str | None:
        """The unit of :attr:`severity_in_unit` (``"mL"``), or None when the spec gives none."""
        out = self._severity_output()
        return None if out is None else out.unit

    @property
    def severity_in_unit(self) -> float | None:
        """The severity in its unit (mL for the reference model: what the demo shows)."""
        out = self._severity_output()
        return None if out is None or not out.in_unit else out.in_unit[0]

    @property
    def error_type(self) -> str | None:
        return None if self.error is None else self.error.type

    # -- JSON ---------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this record (one line of ``results.jsonl``)."""
        d: dict[str, Any] = {"schema": self.schema, "study": self.study, "status": self.status}
        if self.ok:
            d["outputs"] = {name: out.to_json() for name, out in self.outputs.items()}
        d["modalities"] = {
            "used": list(self.modalities_used),
            "missing": list(self.modalities_missing),
        }
        if self.provenance is not None:
            d["provenance"] = self.provenance.to_json()
            d["warnings"] = [w.to_json() for w in self.warnings]
        if not self.ok and self.provenance is not None:
            d["reasons"] = [r.to_json() for r in self.reasons]
        if self.error is not None:
            d["error"] = self.error.to_json()
        d["timing_ms"] = dict(self.timing_ms)
        d["model"] = self.model.to_json()
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ResultRecord:
        """Parse one record (schema 2, or schema 1 written by older versions).

        Raises
        ------
        ValueError, KeyError, TypeError, UsageError
            ``d`` is not a record; :func:`medfuse.runtime.results.io.read_results` counts such
            a line as unreadable.
        """
        if not isinstance(d, Mapping) or not isinstance(d.get("study"), str | None):
            raise TypeError("not a record")
        schema = int(d.get("schema", 1))
        if not 1 <= schema <= SCHEMA:
            raise ValueError(f"record schema {schema} is newer than this medfuse ({SCHEMA})")
        status = str(d["status"])
        prov = d.get("provenance")
        provenance = (
            Provenance.from_json(prov, d.get("warnings")) if isinstance(prov, Mapping) else None
        )
        err = d.get("error")
        error = (
            ErrorInfo(
                str(err.get("type") or "Error"),
                str(err.get("message") or ""),
                str(err.get("stage") or ""),
            )
            if isinstance(err, Mapping)
            else None
        )
        outputs = d.get("outputs") or {}
        return cls(
            study=d.get("study"),
            status=status,
            model=ModelInfo.from_json(d.get("model")),
            outputs={str(k): OutputRecord.from_json(v) for k, v in outputs.items()}
            if status == "ok"
            else {},
            provenance=provenance,
            error=error,
            timing_ms={str(k): float(v) for k, v in (d.get("timing_ms") or {}).items()},
            schema=schema,
        )


def outcome_timing(outcome: StudyOutcome) -> Mapping[str, float]:
    """The finite per-stage timings of an outcome (a failure has none)."""
    raw = getattr(outcome, "timing_ms", None) or {}
    return {k: float(v) for k, v in raw.items() if _num(v) is not None}
