"""Picking the series of a study that feeds one model input (:class:`SeriesSelection`)."""

from __future__ import annotations

from medfuse.bundle.spec import SeriesSelection
from medfuse.runtime.dicom.study import Series, Study

__all__ = ["rank_series", "select_series", "stable_series_order"]


def _uid_key(uid: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for a dotted UID: numeric components compare as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in uid.split("."))


def stable_series_order(series: tuple[Series, ...] | list[Series]) -> list[Series]:
    """Series in an order that does not depend on file names or discovery order.

    The order is by SeriesInstanceUID, compared component by component as numbers; UIDs of one
    scanner usually grow with acquisition time. This is the order ``rule="first"`` uses and
    the tie-breaker of the other rules.
    """
    return sorted(series, key=lambda s: _uid_key(s.uid))


def rank_series(series: list[Series] | tuple[Series, ...], selection: SeriesSelection) -> list[Series]:
    """``series`` in the order ``selection.rule`` prefers them (best first), deterministically.

    ``"most_frames"``: the most frames, then the largest in-plane area; ``"largest_area"``: the
    largest rows × columns, then the most frames; ``"first"``: :func:`stable_series_order`.
    Remaining ties keep :func:`stable_series_order`.
    """
    ordered = stable_series_order(series)
    if selection.rule == "most_frames":
        return sorted(ordered, key=lambda s: (-s.frames, -(s.rows * s.columns)))
    if selection.rule == "largest_area":
        return sorted(ordered, key=lambda s: (-(s.rows * s.columns), -s.frames))
    return ordered


def accepts(selection: SeriesSelection, modality: str) -> bool:
    """Whether ``selection`` takes a series of ``modality`` (compared case-insensitively)."""
    return modality.strip().upper() in {m.strip().upper() for m in selection.modalities}


def select_series(study: Study, selection: SeriesSelection) -> Series | None:
    """The series ``selection``'s rule alone picks: modality, ``min_frames``, then :func:`rank_series`.

    This is the rule without the header checks; :func:`medfuse.runtime.preprocess.plan_study`
    adds them (consistency, faults, decoders) and is what ``medfuse run`` and ``scan`` use.

    Returns
    -------
    Series or None
        ``None`` when no series with instances has an accepted modality and enough frames.
    """
    candidates = [
        s
        for s in study.series
        if s.instances and accepts(selection, s.modality) and s.frames >= selection.min_frames
    ]
    ranked = rank_series(candidates, selection)
    return ranked[0] if ranked else None
