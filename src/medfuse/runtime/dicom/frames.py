"""``read_frames``: one DICOM file → float32 P-values in [0, 1], higher = brighter."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medfuse.runtime.dicom._quiet import quiet_pydicom
from medfuse.runtime.dicom._read import decode, guarded, open_dataset
from medfuse.runtime.dicom.processing import (
    F32,
    Lut,
    Rescale,
    VoiLut,
    VoiWindow,
    is_inverted,
    linear_coefficients,
    minmax_inplace,
    modality_transform,
    rescale_inplace,
    select_voi,
    voi_inplace,
    voi_transforms,
)

__all__ = ["modality_frames", "read_frames"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _same(items: list[object]) -> bool:
    """Whether every frame has the same parameters (so one vectorised pass does them all)."""
    first = items[0]
    return all(it is first or it == first for it in items[1:])


def _params(ds: Dataset, n: int, fn: Callable[[Dataset, int], T]) -> list[T]:
    """``fn(ds, f)`` for every frame; computed once when the file has no per-frame groups."""
    if n > 1 and "PerFrameFunctionalGroupsSequence" in ds:
        return [fn(ds, f) for f in range(n)]
    return [fn(ds, 0)] * n


def modality_frames(ds: Dataset, raw: NDArray[np.generic]) -> NDArray[np.float32]:
    """Decoded stored values (frames, rows, cols) → float32 modality values, one copy."""
    x: NDArray[np.float32] = raw.astype(F32)  # also makes big-endian data native
    mods = _params(ds, x.shape[0], modality_transform)
    if _same(list(mods)):
        return rescale_inplace(x, mods[0])
    for f, t in enumerate(mods):
        x[f] = rescale_inplace(x[f], t)
    return x


def read_frames(path: str | os.PathLike[str], *, voi_index: int = 0) -> NDArray[np.float32]:
    """Read one grayscale DICOM file as display values in [0, 1].

    Stored values → Modality LUT → the file's VOI number ``voi_index`` (a window with its
    VOILUTFunction, or a VOI LUT Sequence item; see
    :func:`~medfuse.runtime.dicom.processing.voi_transforms` for the order) → polarity
    (MONOCHROME1 / PresentationLUTShape INVERSE flipped with ``1 - y``), so higher always means
    brighter. A frame of a file without any VOI is scaled min–max over its modality values (a
    constant frame becomes zeros). The file is decoded once; all arithmetic is float32.

    Parameters
    ----------
    path:
        A DICOM file (any name). Read without ``force``.
    voi_index:
        Which of the file's VOIs to apply (0 = the first).

    Returns
    -------
    numpy.ndarray
        float32, shape ``(frames, rows, cols)``, values in [0, 1]; a new array owned by the caller.

    Raises
    ------
    NotDicomError
        Not a DICOM file: random bytes, empty file, DICOMDIR.
    CorruptDicomError
        Truncated pixel data, missing or invalid required attributes, undecodable data.
    UnsupportedDicomError
        Colour, non-image objects (RT plan, SR), a transfer syntax without an installed decoder
        (the message names the package), or ``voi_index`` past the file's last VOI.

    Notes
    -----
    Native decoders (openjpeg, libjpeg, GDCM) may write diagnostics straight to the process's
    stderr (file descriptor 2), outside Python's logging; redirect fd 2 where that matters.
    """
    quiet_pydicom()
    t0 = time.perf_counter()
    with guarded():
        ds = open_dataset(path)
        raw = decode(ds)
        n = raw.shape[0]
        vois = _params(ds, n, voi_transforms)
        fused = (
            _fused_affine(ds, vois, voi_index)
            if n == 1 or "PerFrameFunctionalGroupsSequence" not in ds
            else None
        )
        if fused is not None:
            # rescale, LINEAR window and polarity are one affine map: 4 passes instead of 8
            x = raw.astype(F32)
            np.multiply(x, F32(fused[0]), out=x)
            np.add(x, F32(fused[1]), out=x)
            np.clip(x, F32(0.0), F32(1.0), out=x)
            _log(x, t0)
            return x
        x = modality_frames(ds, raw)
        if any(vois):
            chosen = [select_voi(v, voi_index) for v in vois if v]
            if len(chosen) == n and _same(list(chosen)):
                x = voi_inplace(x, chosen[0])
            else:
                for f in range(n):
                    x[f] = (
                        voi_inplace(x[f], select_voi(vois[f], voi_index))
                        if vois[f]
                        else minmax_inplace(x[f])
                    )
        else:
            for f in range(n):
                minmax_inplace(x[f])
        if is_inverted(ds):
            np.subtract(F32(1.0), x, out=x)
    _log(x, t0)
    return x


def _fused_affine(
    ds: Dataset, vois: list[list[VoiWindow | VoiLut]], voi_index: int
) -> tuple[float, float] | None:
    """``(a, b)`` so that ``clip(raw * a + b, 0, 1)`` is the whole chain, when it is linear."""
    if not vois[0]:
        return None
    voi = select_voi(vois[0], voi_index)
    mod = modality_transform(ds, 0)
    if not isinstance(voi, VoiWindow) or isinstance(mod, Lut):
        return None
    coef = linear_coefficients(voi)
    if coef is None:
        return None
    slope, intercept = (mod.slope, mod.intercept) if isinstance(mod, Rescale) else (1.0, 0.0)
    a, b = slope * coef[0], intercept * coef[0] + coef[1]
    return (-a, 1.0 - b) if is_inverted(ds) else (a, b)


def _log(x: NDArray[np.float32], t0: float) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "read %s frames of %sx%s in %.2f ms",
            x.shape[0],
            x.shape[1],
            x.shape[2],
            (time.perf_counter() - t0) * 1e3,
        )
