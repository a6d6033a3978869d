"""Segmentation outputs: a label map per study, summarised as per-class fractions and volumes.

A ``segmentation`` output row is ``(classes, D, H, W)`` or ``(classes, H, W)`` logits. With
``softmax`` each voxel takes the class of its largest logit (a label map, classes exclusive);
with ``sigmoid`` each class is its own mask (logit > 0, i.e. probability > 0.5) and the label
map keeps, per voxel, the highest-numbered class that is on (0 where none is). Results carry
the fraction of voxels per class and, when the voxel volume is known, the volume in mL; the
mask itself stays in memory (:attr:`OutputResult.mask`) and reaches disk only when asked
(``medfuse run --masks DIR``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["MaskSummary", "summarise_segmentation", "write_masks"]


@dataclass(frozen=True)
class MaskSummary:
    """One study's segmentation: label map, per-class voxel fractions, volumes (mL) or None."""

    label_map: NDArray[np.uint8]
    fractions: tuple[float, ...]
    volumes_ml: tuple[float, ...] | None


def summarise_segmentation(
    row: NDArray[np.floating], activation: str, voxel_ml: float | None
) -> MaskSummary:
    """Summarise one output row (``(classes, *spatial)`` logits).

    Parameters
    ----------
    row:
        The row's logits.
    activation:
        ``"softmax"`` (exclusive classes) or ``"sigmoid"`` (one mask per class).
    voxel_ml:
        Volume of one voxel of the output grid in mL, or None when the spacing is unknown.
    """
    logits = np.asarray(row, dtype=np.float32)
    n = int(logits.shape[0])
    total = max(int(np.prod(logits.shape[1:])), 1)
    if activation == "sigmoid":
        on = logits > 0.0
        counts = on.reshape(n, -1).sum(axis=1)
        label_map = np.zeros(logits.shape[1:], dtype=np.uint8)
        for c in range(n):
            label_map[on[c]] = c
    else:
        label_map = np.argmax(logits, axis=0).astype(np.uint8)
        counts = np.bincount(label_map.reshape(-1), minlength=n)[:n]
    fractions = tuple(float(c) / total for c in counts)
    volumes = None if voxel_ml is None else tuple(float(c) * voxel_ml for c in counts)
    return MaskSummary(label_map, fractions, volumes)


def write_masks(folder: Path, key: str, outputs: Iterable[Any]) -> list[Path]:
    """Write the label map of every segmentation output of one study as
    ``<folder>/<key>.<output>.npy`` (uint8); ``key`` is the pseudonymous study key."""
    written = []
    for out in outputs:
        mask = getattr(out, "mask", None)
        if mask is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{key}.{out.name}.npy"
        np.save(path, mask, allow_pickle=False)
        written.append(path)
    return written
