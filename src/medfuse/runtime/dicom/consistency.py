"""Whether the slices of one series form one volume, and in which order.

One rule, used twice: by :func:`~medfuse.runtime.dicom.load_volume` on every frame it reads,
and by the series planning (:mod:`medfuse.runtime.preprocess.plan`) on the headers discovery
recorded, so ``medfuse scan`` refuses a series for the same reason ``medfuse run`` would.

Slices must have one size, parallel orientations and distinct positions along the normal; they
are ordered by position projected on the normal (PS3.3 C.7.6.2.1.1), or by InstanceNumber when
positions or orientation are missing (``known=False``). A violation is an
:class:`~medfuse.errors.InconsistentSeriesError` whose ``reason`` names it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from medfuse.errors import InconsistentSeriesError
from medfuse.runtime.dicom.geometry import slice_normal

__all__ = ["ORIENTATION_TOLERANCE", "SliceOrder", "order_slices"]

ORIENTATION_TOLERANCE = 1e-3  # on direction cosines
_UNEVEN = 0.1  # slice spacing varying by more than this fraction is reported

Position = tuple[float, float, float] | None
Orientation = tuple[float, ...] | None


@dataclass(frozen=True, eq=False)
class SliceOrder:
    """How the slices of a series stack up.

    Attributes
    ----------
    order:
        Slice indices in increasing position along the normal (or InstanceNumber order).
    dz:
        Median distance between sorted positions (mm); None for one slice or unknown geometry.
    known:
        Every slice had a position and the series an orientation.
    uneven:
        The spacing varies by more than 10 %.
    """

    order: NDArray[np.intp]
    dz: float | None
    known: bool
    uneven: bool = False


def order_slices(
    sizes: Sequence[tuple[int, int]],
    positions: Sequence[Position],
    orientations: Sequence[Orientation],
    numbers: Sequence[int],
) -> SliceOrder:
    """Check that the slices form one volume and sort them.

    Parameters
    ----------
    sizes:
        (rows, columns) of each slice.
    positions, orientations:
        ImagePositionPatient and ImageOrientationPatient of each slice (None when absent).
    numbers:
        A fallback sort key per slice (InstanceNumber-based).

    Raises
    ------
    InconsistentSeriesError
        ``mixed_sizes``, ``mixed_orientation`` or ``duplicate_positions``; the message counts
        the slices and never quotes a header value.
    """
    n = len(sizes)
    common = Counter(sizes).most_common(1)[0][0]
    odd = sum(1 for s in sizes if s != common)
    if odd:
        raise InconsistentSeriesError(
            f"{odd} of {n} slices differ in size from the others ({common[0]}×{common[1]}); "
            "a volume needs slices of one size",
            "mixed_sizes",
        )
    iop = orientations[0]
    known = iop is not None and all(p is not None for p in positions)
    if not known or iop is None:
        order = np.argsort(np.asarray(numbers), kind="stable")
        return SliceOrder(order=order, dz=None, known=False)
    tilted = sum(
        1
        for o in orientations
        if o is None or max(abs(a - b) for a, b in zip(o, iop, strict=True)) > ORIENTATION_TOLERANCE
    )
    if tilted:
        raise InconsistentSeriesError(
            f"{tilted} of {n} slices are not parallel to the first; the series is not one volume "
            "(orthogonal localizers, rotating projections)",
            "mixed_orientation",
        )
    proj = np.asarray([p for p in positions if p is not None], dtype=np.float64) @ slice_normal(iop)
    order = np.argsort(proj, kind="stable")
    if n < 2:
        return SliceOrder(order=order, dz=None, known=True)
    diffs = np.diff(proj[order])
    dz = float(np.median(diffs))
    shared = int(np.sum(diffs < 1e-4 * max(dz, 1.0)))
    if shared or dz <= 0:
        raise InconsistentSeriesError(
            f"{max(shared, 1)} of {n} slices share a position with another; the series holds "
            "several volumes (echoes, phases, time points)",
            "duplicate_positions",
        )
    uneven = float(np.max(np.abs(diffs - dz))) > _UNEVEN * dz
    return SliceOrder(order=order, dz=dz, known=True, uneven=uneven)
