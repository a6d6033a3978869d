"""What a result rests on: the study's series, which fed which input, why the others did not.

A :class:`Provenance` is made by the series planning of :mod:`medfuse.runtime.preprocess` (the
same code for ``medfuse scan`` and ``medfuse run``) and written into every result record. It is
PHI-free by construction:

- series are numbered study-locally (``1, 2, …`` in SeriesInstanceUID order, so the numbers are
  stable across runs) — no UID, description, date or path;
- Modality is kept only when it is a defined term of PS3.3 C.7.3.1.1.1, otherwise ``"unknown"``
  (:func:`medfuse.runtime.results.redaction.defined_term`);
- SeriesNumber is an integer or nothing; the transfer syntax is a kind (``native``, ``jpeg2000``…);
- every ``detail`` text is built here from codes and numbers, never from a header value.

Reason codes (:data:`REASONS`) say why a series fed no input. The *faults* among them
(:data:`FAULTS`: a file that could not be read, pixel data of the wrong length, no decoder,
disagreeing files, NaN, an image over the reading caps) are data or installation problems; the others describe content the model
does not take. A study whose presence rule is not met is ``error`` when a fault kept an input
empty and ``no_usable_input`` otherwise (:func:`study_status`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "FAULTS",
    "REASONS",
    "InputUse",
    "Notice",
    "PresenceRule",
    "Provenance",
    "SeriesNote",
    "reason_of",
    "study_status",
]

REASONS: Mapping[str, str] = MappingProxyType(
    {
        "no_series": "the study holds no series of a modality the input takes",
        "wrong_modality": "no model input takes this modality",
        "too_few_frames": "fewer frames (slices) than the input needs",
        "mixed_sizes": "its slices differ in size",
        "mixed_orientation": "its slices are not parallel (localizers, rotating projections)",
        "duplicate_positions": "several slices share a position (echoes, phases, time points)",
        "unsupported": "an image medfuse does not read (colour, non-image)",
        "not_chosen": "another series of the modality was chosen by the input's rule",
        "unreadable": "a file of it could not be read",
        "pixel_length": "its pixel data is longer or shorter than the header says",
        "undecodable": "no decoder is installed for its transfer syntax",
        "mixed_modality": "its files disagree on Modality",
        "non_finite": "its values are NaN or infinite",
        "mixed_patient": "the study's files name more than one patient",
        "too_large": "its image is larger than medfuse reads (declared or inflated size)",
    }
)
"""Reason code → what it means (the codes a record's ``reason`` fields take)."""

FAULTS = frozenset(
    {
        "unreadable",
        "pixel_length",
        "undecodable",
        "mixed_modality",
        "non_finite",
        "mixed_patient",
        "too_large",
    }
)
"""Reasons that are faults of the data or the installation rather than the study's content."""


def reason_of(exc: BaseException) -> str:
    """The reason code of a series that failed with ``exc`` (``unreadable`` for anything else).

    medfuse's DICOM errors and :class:`~medfuse.errors.NonFiniteDataError` carry their code
    (``reason``: ``pixel_length``, ``undecodable``, ``mixed_orientation``, ``non_finite`` …).
    """
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) and reason in REASONS else "unreadable"


@dataclass(frozen=True)
class PresenceRule:
    """When a study may be given a result: every ``required`` input and ``min_present`` in all."""

    min_present: int = 1
    required: tuple[str, ...] = ()

    def met_by(self, present: tuple[str, ...] | list[str]) -> bool:
        """Whether inputs ``present`` satisfy the rule."""
        return len(present) >= self.min_present and all(r in present for r in self.required)

    def describe(self) -> str:
        """The rule in words, e.g. ``at least 1 image input``."""
        text = f"at least {self.min_present} image input{'s' if self.min_present != 1 else ''}"
        if self.required:
            text += f", including {', '.join(self.required)}"
        return text

    def to_json(self, met: bool) -> dict[str, Any]:
        return {"min_present": self.min_present, "required": list(self.required), "met": met}


@dataclass(frozen=True)
class SeriesNote:
    """One series of a study (PHI-free) and what became of it.

    Attributes
    ----------
    n:
        Study-local ordinal, 1-based, in SeriesInstanceUID order.
    modality:
        Modality as a defined term, or ``"unknown"``.
    number:
        SeriesNumber, or ``None`` when absent or not an integer.
    files, frames, rows, columns:
        Image files, frames (slices) over all files, and the first file's matrix.
    syntax:
        Transfer syntax kind (``native``, ``deflated``, ``rle``, ``jpeg``, ``jpeg-lossless``,
        ``jpeg-ls``, ``jpeg2000``, ``htj2k``, ``other``, or ``mixed``).
    used_by:
        The inputs it fed.
    reason, detail:
        Why it fed no input (a code of :data:`REASONS`) and a short PHI-free explanation; ``None``
        and ``""`` for a used series.
    """

    n: int
    modality: str
    number: int | None
    files: int
    frames: int
    rows: int
    columns: int
    syntax: str
    used_by: tuple[str, ...] = ()
    reason: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "modality": self.modality,
            "number": self.number,
            "files": self.files,
            "frames": self.frames,
            "rows": self.rows,
            "columns": self.columns,
            "syntax": self.syntax,
        }
        if self.used_by:
            out["used_by"] = list(self.used_by)
        if self.reason is not None:
            out["reason"] = self.reason
            out["detail"] = self.detail
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SeriesNote:
        number = d.get("number")
        return cls(
            n=int(d["n"]),
            modality=str(d.get("modality", "")),
            number=None if number is None else int(number),
            files=int(d.get("files", 0)),
            frames=int(d.get("frames", 0)),
            rows=int(d.get("rows", 0)),
            columns=int(d.get("columns", 0)),
            syntax=str(d.get("syntax", "")),
            used_by=tuple(str(x) for x in d.get("used_by") or ()),
            reason=None if d.get("reason") is None else str(d["reason"]),
            detail=str(d.get("detail", "")),
        )


@dataclass(frozen=True)
class InputUse:
    """One image input of the model: the series that fed it, or why none did.

    Attributes
    ----------
    modality:
        The modality of the series used, or the modalities the input takes when absent.
    present:
        Whether a series fed it.
    series:
        Ordinal of the series that fed it (:attr:`SeriesNote.n`); None when absent, or when
        only the presence mask is known (a record made from a Triton ensemble's outputs).
    frames:
        Frames (slices) of that series the input used: all of a volume, one for a 2-D image.
    reason, detail:
        For an absent input: ``no_series`` or the reason of the best series it could have had.
    """

    modality: str
    present: bool = False
    series: int | None = None
    frames: int = 0
    reason: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        if self.present:
            return {
                "modality": self.modality,
                "present": True,
                "series": self.series,
                "frames": self.frames,
            }
        return {
            "modality": self.modality,
            "present": False,
            "reason": self.reason,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InputUse:
        series = d.get("series")
        return cls(
            modality=str(d.get("modality", "")),
            present=bool(d.get("present", series is not None)),
            series=None if series is None else int(series),
            frames=int(d.get("frames", 0)),
            reason=None if d.get("reason") is None else str(d["reason"]),
            detail=str(d.get("detail", "")),
        )


@dataclass(frozen=True)
class Notice:
    """A warning on a result: something was dropped or degraded (``code``, ``count``, ``detail``)."""

    code: str
    detail: str
    input: str | None = None
    count: int = 1

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "count": self.count, "detail": self.detail}
        if self.input is not None:
            out["input"] = self.input
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Notice:
        return cls(
            code=str(d["code"]),
            detail=str(d.get("detail", "")),
            input=None if d.get("input") is None else str(d["input"]),
            count=int(d.get("count", 1)),
        )


@dataclass(frozen=True)
class Provenance:
    """Which series of a study fed which model input, why the others did not, and warnings.

    Attributes
    ----------
    inputs:
        Image input name → :class:`InputUse`, in the model's order.
    series:
        Every series of the study, by ordinal.
    rule:
        The model's presence rule; ``rule_met`` whether the inputs used satisfy it.
    warnings:
        What was dropped or degraded on the way (:class:`Notice`).
    unreadable_nearby:
        Unreadable files or folders beside the study's files whose study could not be told
        (they may belong to it).
    """

    inputs: Mapping[str, InputUse]
    series: tuple[SeriesNote, ...] = ()
    rule: PresenceRule = field(default_factory=PresenceRule)
    rule_met: bool = False
    warnings: tuple[Notice, ...] = ()
    unreadable_nearby: int = 0

    @property
    def present(self) -> tuple[str, ...]:
        """Inputs fed from a series, in the model's order."""
        return tuple(name for name, use in self.inputs.items() if use.present)

    @property
    def missing(self) -> tuple[str, ...]:
        """Inputs left empty, in the model's order."""
        return tuple(name for name, use in self.inputs.items() if not use.present)

    @property
    def faults(self) -> tuple[str, ...]:
        """Fault reasons among the empty inputs (what makes an unmet rule an error)."""
        return tuple(
            use.reason for use in self.inputs.values() if not use.present and use.reason in FAULTS
        )

    def note(self, n: int) -> SeriesNote:
        """The series with ordinal ``n``."""
        return self.series[n - 1]

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule.to_json(self.rule_met),
            "inputs": {name: use.to_json() for name, use in self.inputs.items()},
            "series": [s.to_json() for s in self.series],
            "unreadable_nearby": self.unreadable_nearby,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], warnings: Any = ()) -> Provenance:
        rule = d.get("rule") or {}
        return cls(
            inputs={str(k): InputUse.from_json(v) for k, v in (d.get("inputs") or {}).items()},
            series=tuple(SeriesNote.from_json(s) for s in d.get("series") or ()),
            rule=PresenceRule(
                min_present=int(rule.get("min_present", 1)),
                required=tuple(str(x) for x in rule.get("required") or ()),
            ),
            rule_met=bool(rule.get("met", False)),
            warnings=tuple(Notice.from_json(w) for w in warnings or ()),
            unreadable_nearby=int(d.get("unreadable_nearby", 0)),
        )


def study_status(provenance: Provenance) -> str:
    """``ok`` when the rule is met; else ``error`` if a fault emptied an input, else ``no_usable_input``."""
    if provenance.rule_met:
        return "ok"
    return "error" if provenance.faults else "no_usable_input"
