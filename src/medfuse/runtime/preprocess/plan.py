"""Which series of a study may feed which model input, from headers only — and why the others may not.

:func:`plan_study` is the one series-selection step of ``medfuse scan`` (a dry run) and
``medfuse run`` (through :func:`~medfuse.runtime.preprocess.preprocess_study`), so both say the
same thing about a study. For every series it checks, in this order, without decoding a pixel:

1. a model input takes its Modality (else ``wrong_modality``);
2. faults seen by discovery: files that disagree on Modality (``mixed_modality``), files whose
   header could not be read (``unreadable``), pixel data of the wrong length (``pixel_length``);
3. grayscale (``unsupported``) and a decoder for its transfer syntax (``undecodable``);
4. for a volume input, one size, parallel slices and distinct positions
   (:func:`~medfuse.runtime.dicom.consistency.order_slices`: ``mixed_sizes``,
   ``mixed_orientation``, ``duplicate_positions``);
5. enough frames (``too_few_frames``).

The series that pass are an input's *candidates*, best first by the input's rule
(:func:`~medfuse.runtime.preprocess.select.rank_series`). Reading then takes the first candidate
that reads cleanly (:class:`PlanOutcome` records what happened), and :meth:`StudyPlan.provenance`
turns it all into the record's :class:`~medfuse.runtime.results.Provenance`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from medfuse.bundle.spec import InputSpec, ModelSpec, SeriesSelection
from medfuse.errors import InconsistentSeriesError, MissingDecoderError
from medfuse.runtime.dicom.consistency import order_slices
from medfuse.runtime.dicom.study import Series, Study
from medfuse.runtime.preprocess.select import accepts, rank_series, stable_series_order
from medfuse.runtime.results.provenance import (
    FAULTS,
    InputUse,
    Notice,
    PresenceRule,
    Provenance,
    SeriesNote,
)
from medfuse.runtime.results.redaction import (
    PHOTOMETRIC_INTERPRETATIONS,
    defined_term,
    modality_term,
)

__all__ = ["PlanOutcome", "StudyPlan", "plan_study", "syntax_kind"]

logger = logging.getLogger(__name__)

_SYNTAX_KINDS = {
    "1.2.840.10008.1.2": "native",
    "1.2.840.10008.1.2.1": "native",
    "1.2.840.10008.1.2.2": "native",
    "1.2.840.10008.1.2.1.99": "deflated",
    "1.2.840.10008.1.2.5": "rle",
    "1.2.840.10008.1.2.4.50": "jpeg",
    "1.2.840.10008.1.2.4.51": "jpeg",
    "1.2.840.10008.1.2.4.57": "jpeg-lossless",
    "1.2.840.10008.1.2.4.70": "jpeg-lossless",
    "1.2.840.10008.1.2.4.80": "jpeg-ls",
    "1.2.840.10008.1.2.4.81": "jpeg-ls",
    "1.2.840.10008.1.2.4.90": "jpeg2000",
    "1.2.840.10008.1.2.4.91": "jpeg2000",
    "1.2.840.10008.1.2.4.92": "jpeg2000",
    "1.2.840.10008.1.2.4.93": "jpeg2000",
    "1.2.840.10008.1.2.4.201": "htj2k",
    "1.2.840.10008.1.2.4.202": "htj2k",
    "1.2.840.10008.1.2.4.203": "htj2k",
}


def syntax_kind(series: Series) -> str:
    """The kind of the series' transfer syntax (``native``, ``jpeg2000``… ``mixed``, ``other``)."""
    kinds = {_SYNTAX_KINDS.get(i.transfer_syntax, "other") for i in series.instances}
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed" if kinds else "other"


@functools.lru_cache(maxsize=64)
def _decoder_problem(tsyntax: str, bits_stored: int | None = None) -> str | None:
    """The missing-decoder message for a transfer syntax (and sample depth: a 12-bit JPEG
    Extended needs more than Pillow), or None when it can be read."""
    from pydicom.uid import UID

    from medfuse.runtime.dicom._read import check_decoder

    uid = UID(tsyntax)
    if not uid.is_transfer_syntax:  # private or garbled: no decoder can be named for it
        return (
            "its transfer syntax is not one DICOM defines, so no decoder can read its pixel "
            "data; export the series uncompressed (explicit VR little endian)"
        )
    if not uid.is_compressed:
        return None
    try:
        check_decoder(uid, bits_stored)
    except MissingDecoderError as exc:
        return str(exc)
    except Exception as exc:  # no decoder exists at all for it
        return str(exc)
    return None


@dataclass(frozen=True)
class _Verdict:
    """Why one series cannot feed one input (None: it can)."""

    reason: str
    detail: str


def _takes(selection: SeriesSelection, series: Series) -> bool:
    """Whether ``selection`` takes the series' Modality — any of its files', when they disagree."""
    return any(
        accepts(selection, m) for m in {series.modality, *(i.modality for i in series.instances)}
    )


def _describe(n: int, series: Series) -> str:
    return f"series {n} ({modality_term(series.modality)}, {series.frames} frame(s))"


def _fault(series: Series) -> _Verdict | None:
    """Faults discovery saw in the series' files."""
    files = len(series.instances) + series.unreadable_files
    if series.mixed_modality:
        terms = sorted({modality_term(i.modality) for i in series.instances})
        return _Verdict(
            "mixed_modality",
            f"its {len(series.instances)} files carry {len(terms)} different Modality values "
            f"({', '.join(terms)}); a series must be one modality",
        )
    if series.unreadable_files:
        return _Verdict(
            "unreadable",
            f"{series.unreadable_files} of its {files} files could not be read; a series is "
            "used whole or not at all",
        )
    huge = sum(1 for i in series.instances if i.problem == "too_large")
    if huge:
        return _Verdict(
            "too_large",
            f"{huge} of its {files} files declare an image larger than medfuse reads (a frame "
            "over 8192 × 8192 pixels, or more pixel bytes than the limit here); they are not read",
        )
    for keyword in ("RescaleSlope", "RescaleIntercept", "NumberOfFrames"):
        junk = sum(1 for i in series.instances if keyword in i.bad_values)
        if junk:
            return _Verdict(
                "unreadable",
                f"{junk} of its {files} files hold a {keyword} the pixel data cannot be read "
                "with (not a number, or not a positive frame count)",
            )
    bad = sum(1 for i in series.instances if i.problem == "pixel_length")
    if bad:
        return _Verdict(
            "pixel_length",
            f"{bad} of its {files} files hold pixel data longer or shorter than Rows × Columns "
            "× Frames × BitsAllocated says",
        )
    return None


def _judge(series: Series, inp: InputSpec) -> _Verdict | None:
    """Whether ``series`` can feed ``inp`` (its modality is accepted and it has no fault)."""
    recipe = inp.preprocessing
    assert recipe is not None
    volume = recipe.geometry == "volume"
    used = series.instances if volume else series.instances[:1]
    colour = next((i for i in used if not i.is_grayscale), None)
    if colour is not None:
        term = defined_term(colour.photometric_interpretation, PHOTOMETRIC_INTERPRETATIONS)
        return _Verdict(
            "unsupported",
            f"not a grayscale image (PhotometricInterpretation {term}, SamplesPerPixel "
            f"{colour.samples_per_pixel}); medfuse reads MONOCHROME1 / MONOCHROME2",
        )
    if recipe.intensity.method == "voi":
        junk = [
            k for k in ("WindowCenter", "WindowWidth", "VOILUTFunction") if k in used[0].bad_values
        ]
        if junk:
            return _Verdict(
                "unreadable",
                f"its {', '.join(junk)} cannot be used for the input's display window (not a "
                "number, or not a defined VOILUTFunction: LINEAR, LINEAR_EXACT, SIGMOID)",
            )
    for tsyntax, bits in sorted({(i.transfer_syntax, i.bits_stored or 0) for i in used}):
        problem = _decoder_problem(tsyntax, bits or None) if tsyntax else None
        if problem is not None:
            return _Verdict("undecodable", problem)
    if volume:
        try:
            if all(i.frames == 1 for i in series.instances):
                order_slices(
                    [(i.rows, i.columns) for i in series.instances],
                    [i.position for i in series.instances],
                    [i.orientation for i in series.instances],
                    [i.instance_number or 0 for i in series.instances],
                )
            else:  # per-frame geometry is only known once the files are read
                order_slices(
                    [(i.rows, i.columns) for i in series.instances],
                    [None] * len(series.instances),
                    [None] * len(series.instances),
                    [0] * len(series.instances),
                )
        except InconsistentSeriesError as exc:
            return _Verdict(exc.reason, str(exc))
    need = recipe.selection.min_frames
    if series.frames < need:
        return _Verdict(
            "too_few_frames",
            f"found {series.frames} frame(s); input {inp.name} needs at least {need}",
        )
    return None


@dataclass
class PlanOutcome:
    """What reading did with a plan: series used per input, read failures, volume notes.

    Filled in by :func:`~medfuse.runtime.preprocess.preprocess_study`; a plan that is only
    scanned keeps it empty (then every first candidate counts as used).
    """

    used: dict[str, tuple[int, int]] = field(default_factory=dict)  # input → (ordinal, frames)
    failed: dict[int, tuple[str, str]] = field(default_factory=dict)  # ordinal → (reason, detail)
    first_fault: BaseException | None = None
    notices: list[Notice] = field(default_factory=list)


@dataclass(frozen=True)
class StudyPlan:
    """The series of one study, each input's candidates (best first), and the header verdicts.

    Attributes
    ----------
    study:
        The study (holds UIDs and paths: never log or write it).
    series:
        The study's series in ordinal order (:func:`stable_series_order`): ordinal ``n`` is
        ``series[n - 1]``.
    candidates:
        Image input name → ordinals of the series that may feed it, best first.
    verdicts:
        Ordinal → (reason, detail) of a series that can feed no input, from its headers.
    rule:
        The model's presence rule.
    """

    study: Study = field(repr=False)
    spec: ModelSpec = field(repr=False)
    series: tuple[Series, ...]
    candidates: Mapping[str, tuple[int, ...]]
    verdicts: Mapping[int, tuple[str, str]]
    judged: Mapping[tuple[int, str], tuple[str, str]]
    rule: PresenceRule

    @property
    def usable(self) -> bool:
        """Whether the headers allow the presence rule to be met (reading may still fail)."""
        return self.rule.met_by([n for n, c in self.candidates.items() if c])

    def provenance(self, outcome: PlanOutcome | None = None) -> Provenance:
        """The record's provenance: after reading (``outcome``), or as a scan sees it (None)."""
        out = outcome or PlanOutcome(
            used={
                name: (c[0], self._frames_for(name, c[0]))
                for name, c in self.candidates.items()
                if c
            }
        )
        inputs: dict[str, InputUse] = {}
        used_by: dict[int, list[str]] = {}
        for inp in self.spec.image_inputs:
            got = out.used.get(inp.name)
            if got is not None:
                n, frames = got
                inputs[inp.name] = InputUse(
                    modality=modality_term(self.series[n - 1].modality),
                    present=True,
                    series=n,
                    frames=frames,
                )
                used_by.setdefault(n, []).append(inp.name)
            else:
                reason, detail = self._absent(inp, out)
                inputs[inp.name] = InputUse(
                    modality="/".join(inp.preprocessing.selection.modalities)
                    if inp.preprocessing
                    else inp.name,
                    reason=reason,
                    detail=detail,
                )
        notes = tuple(
            self._note(n, used_by.get(n, ()), out) for n in range(1, len(self.series) + 1)
        )
        present = [n for n, u in inputs.items() if u.present]
        met = self.rule.met_by(present)
        # without a result the reasons say it all; warnings qualify a result that is given
        warnings = (
            [
                *out.notices,
                *self._fault_notices(inputs, out),
                *self._refused_notices(inputs),
                *self._series_notices(used_by),
            ]
            if met
            else []
        )
        if self.study.unreadable_nearby and met:
            warnings.append(
                Notice(
                    "unreadable_nearby",
                    f"{self.study.unreadable_nearby} unreadable file(s) or folder(s) lie beside "
                    "this study's files; they may belong to it",
                    count=self.study.unreadable_nearby,
                )
            )
        return Provenance(
            inputs=inputs,
            series=notes,
            rule=self.rule,
            rule_met=met,
            warnings=tuple(warnings),
            unreadable_nearby=self.study.unreadable_nearby,
        )

    # -- helpers --------------------------------------------------------------------------------

    def _frames_for(self, name: str, n: int) -> int:
        inp = self.spec.input(name)
        volume = inp.preprocessing is not None and inp.preprocessing.geometry == "volume"
        return self.series[n - 1].frames if volume else 1

    def _reason_for(self, n: int, name: str, out: PlanOutcome) -> tuple[str, str] | None:
        """Why series ``n`` did not feed input ``name`` (read failure, or header verdict)."""
        if n in out.failed:
            return out.failed[n]
        if n in self.verdicts:
            return self.verdicts[n]
        return self.judged.get((n, name))

    def _absent(self, inp: InputSpec, out: PlanOutcome) -> tuple[str, str]:
        """Why an input is empty: no series of its modality, else its best series' reason."""
        assert inp.preprocessing is not None
        selection = inp.preprocessing.selection
        mine = [s for s in self.series if _takes(selection, s) and s.instances]
        lost = [n for n, s in enumerate(self.series, start=1) if not s.instances]
        if not mine and lost:
            return (
                "unreadable",
                f"no {'/'.join(selection.modalities)} series could be read; series "
                f"{', '.join(map(str, lost))} of unknown modality had no readable file",
            )
        if not mine:
            found = sorted({modality_term(s.modality) for s in self.series})
            return (
                "no_series",
                f"no {'/'.join(selection.modalities)} series in the study"
                + (f" (it holds {', '.join(found)})" if found else ""),
            )
        ranked = rank_series(mine, selection)
        reasons = []
        for s in ranked:
            n = self.series.index(s) + 1
            why = self._reason_for(n, inp.name, out)
            if why is not None:
                reasons.append((n, s, why))
        if not reasons:  # candidates exist but none was read: the rule failed on other inputs
            return ("not_chosen", "its series was not read: the presence rule could not be met")
        n, s, (reason, detail) = next((r for r in reasons if r[2][0] in FAULTS), reasons[0])
        return reason, f"{_describe(n, s)}: {detail}"

    def _note(self, n: int, used_by: Sequence[str], out: PlanOutcome) -> SeriesNote:
        s = self.series[n - 1]
        reason: tuple[str, str] | None = None
        if not used_by:
            reason = out.failed.get(n) or self.verdicts.get(n)
            if reason is None:
                takers = [name for name, c in self.candidates.items() if n in c]
                if takers:
                    name = takers[0]
                    winner = out.used.get(name)
                    rule = self.spec.input(name).preprocessing
                    assert rule is not None
                    reason = (
                        "not_chosen",
                        f"input {name} took series {winner[0]} by rule {rule.selection.rule}"
                        if winner
                        else f"input {name} was not filled",
                    )
                else:
                    judged = [v for (m, _), v in self.judged.items() if m == n]
                    reason = judged[0] if judged else ("not_chosen", "not used")
        return SeriesNote(
            n=n,
            modality=modality_term(s.modality),
            number=s.number,
            files=len(s.instances) + s.unreadable_files,
            frames=s.frames,
            rows=s.rows,
            columns=s.columns,
            syntax=syntax_kind(s),
            used_by=tuple(used_by),
            reason=None if reason is None else reason[0],
            detail="" if reason is None else reason[1],
        )

    def _refused_notices(self, inputs: Mapping[str, InputUse]) -> list[Notice]:
        """A warning per input left empty although the study holds series of its modality,
        refused for their content (too few frames, localizer...): the result rests on less
        than the study holds."""
        return [
            Notice(
                "input_refused",
                f"input {name} is empty although the study holds a series it could take "
                f"({use.detail}); the result rests on the other inputs",
                input=name,
            )
            for name, use in inputs.items()
            if not use.present
            and use.reason is not None
            and use.reason not in FAULTS
            and use.reason not in ("no_series", "not_chosen")
        ]

    def _series_notices(self, used_by: Mapping[int, Sequence[str]]) -> list[Notice]:
        """Warnings on the series a result rests on: copies left out, mixed frames of reference."""
        notices: list[Notice] = []
        for n, names in sorted(used_by.items()):
            s = self.series[n - 1]
            where = f"series {n} (input {', '.join(names)})"
            if s.duplicate_files:
                notices.append(
                    Notice(
                        "duplicate_files",
                        f"{where}: {s.duplicate_files} file(s) repeat an instance of the series "
                        "(same SOPInstanceUID) and were left out",
                        input=names[0],
                        count=s.duplicate_files,
                    )
                )
            if s.mixed_frame_of_reference:
                notices.append(
                    Notice(
                        "mixed_frame_of_reference",
                        f"{where}: its files name more than one FrameOfReferenceUID; slice "
                        "positions may not share one coordinate system",
                        input=names[0],
                    )
                )
        return notices

    def _fault_notices(self, inputs: Mapping[str, InputUse], out: PlanOutcome) -> list[Notice]:
        """A warning per input whose modality had a faulty series while a result was still given."""
        notices: list[Notice] = []
        for inp in self.spec.image_inputs:
            assert inp.preprocessing is not None
            selection = inp.preprocessing.selection
            faulty = []
            for n, s in enumerate(self.series, start=1):
                if not _takes(selection, s):
                    continue
                why = self._reason_for(n, inp.name, out)
                if why is not None and why[0] in FAULTS:
                    faulty.append(f"series {n}: {why[0]}")
            if not faulty:
                continue
            use = inputs[inp.name]
            if use.present:
                notices.append(
                    Notice(
                        "series_unreadable",
                        f"{len(faulty)} {'/'.join(selection.modalities)} series could not be "
                        f"used ({'; '.join(faulty)}); input {inp.name} took series {use.series}",
                        input=inp.name,
                        count=len(faulty),
                    )
                )
            else:
                notices.append(
                    Notice(
                        "input_unreadable",
                        f"input {inp.name} is empty because its series could not be read "
                        f"({'; '.join(faulty)}); the result rests on the other inputs",
                        input=inp.name,
                        count=len(faulty),
                    )
                )
        return notices


def plan_study(study: Study, spec: ModelSpec) -> StudyPlan:
    """Judge every series of ``study`` against ``spec``'s image inputs from headers only.

    Parameters
    ----------
    study:
        A discovered study.
    spec:
        The model spec (image inputs with their selection and recipe; the presence rule).

    Returns
    -------
    StudyPlan
        Candidates per input (best first), the verdict on every other series, the rule.
    """
    series = tuple(stable_series_order(list(study.series)))
    images = spec.image_inputs
    verdicts: dict[int, tuple[str, str]] = {}
    judged: dict[tuple[int, str], tuple[str, str]] = {}
    accepted: dict[str, list[Series]] = {i.name: [] for i in images}
    for n, s in enumerate(series, start=1):
        takers = [i for i in images if i.preprocessing and _takes(i.preprocessing.selection, s)]
        if study.patients > 1:
            verdicts[n] = (
                "mixed_patient",
                f"the study's files name {study.patients} different patients (PatientID); "
                "its series are not combined into one result",
            )
            continue
        if not s.instances:
            verdicts[n] = (
                "unreadable",
                f"none of its {s.unreadable_files} file(s) could be read, so its modality is "
                "unknown",
            )
            continue
        if not takers:
            wanted = sorted(
                {m for i in images if i.preprocessing for m in i.preprocessing.selection.modalities}
            )
            verdicts[n] = (
                "wrong_modality",
                f"Modality {modality_term(s.modality)}; the model takes {', '.join(wanted)}",
            )
            continue
        fault = _fault(s)
        if fault is not None:
            verdicts[n] = (fault.reason, fault.detail)
            continue
        for inp in takers:
            verdict = _judge(s, inp)
            if verdict is None:
                accepted[inp.name].append(s)
            else:
                judged[(n, inp.name)] = (verdict.reason, verdict.detail)
    candidates: dict[str, tuple[int, ...]] = {}
    for inp in images:
        assert inp.preprocessing is not None
        ranked = rank_series(accepted[inp.name], inp.preprocessing.selection)
        candidates[inp.name] = tuple(series.index(s) + 1 for s in ranked)
    plan = StudyPlan(
        study=study,
        spec=spec,
        series=series,
        candidates=candidates,
        verdicts=verdicts,
        judged=judged,
        rule=PresenceRule(min_present=spec.min_present, required=spec.required_inputs),
    )
    logger.debug(
        "plan: %d series, candidates per input %s, rule met from headers: %s",
        len(series),
        {name: len(c) for name, c in candidates.items()},
        plan.usable,
    )
    return plan
