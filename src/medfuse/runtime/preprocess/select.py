"""Picking the series of a study that feeds one model input (:class:`SeriesSelection`)."""

from __future__ import annotations

import logging

from medfuse.bundle.spec import SeriesSelection
from medfuse.runtime.dicom.study import Series, Study

__all__ = ["select_series", "stable_series_order"]

logger = logging.getLogger(__name__)


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


def select_series(study: Study, selection: SeriesSelection) -> Series | None:
    """The series of ``study`` that feeds an input, or ``None`` when no series qualifies.

    Parameters
    ----------
    study:
        A discovered study (headers only).
    selection:
        Accepted modalities (compared case-insensitively), ``min_frames`` and the ``rule``.

    Returns
    -------
    Series or None
        Among series with an accepted modality and at least ``min_frames`` frames (and at least
        one instance): ``"most_frames"`` takes the most frames, then the largest in-plane
        area; ``"largest_area"`` the largest rows × columns, then the most frames;
        ``"first"`` the first in :func:`stable_series_order`. Remaining ties go to the first
        in that order, so the choice is deterministic.
    """
    wanted = {m.strip().upper() for m in selection.modalities}
    candidates = stable_series_order(
        [
            s
            for s in study.series
            if s.instances
            and s.modality.strip().upper() in wanted
            and s.frames >= selection.min_frames
        ]
    )
    if not candidates:
        logger.debug(
            "no series for modalities %s with >= %d frame(s); study has %s",
            sorted(wanted),
            selection.min_frames,
            list(study.modalities),
        )
        return None
    if selection.rule == "most_frames":
        chosen = max(candidates, key=lambda s: (s.frames, s.rows * s.columns))
    elif selection.rule == "largest_area":
        chosen = max(candidates, key=lambda s: (s.rows * s.columns, s.frames))
    else:
        chosen = candidates[0]
    logger.debug(
        "selected a %s series (%d frames, %dx%d) by %s among %d candidate(s)",
        chosen.modality,
        chosen.frames,
        chosen.rows,
        chosen.columns,
        selection.rule,
        len(candidates),
    )
    return chosen
