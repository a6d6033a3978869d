"""The grayscale pixel transforms, in the standard's order (PS3.4 N.2.1, PS3.3 C.11).

stored values → :func:`apply_modality_lut` → :func:`apply_voi` (or :func:`apply_window` with a
fixed window) → :func:`apply_polarity` → P-values in [0, 1], higher = brighter.

Each function takes an array and the dataset, returns a new float32 array (the input is left
untouched) and is a documented no-op when its attributes are absent. Arrays are one frame
``(rows, cols)`` or a stack ``(frames, rows, cols)``; for enhanced multi-frame objects the
per-frame functional groups (PS3.3 C.7.6.16) are honoured frame by frame, ``frame`` giving the
index of the first frame the array holds.

Unlike pydicom's display helpers these always produce float32 in modality units (modality LUT)
or [0, 1] (VOI, polarity): ``pydicom.pixels.apply_windowing`` is scaled to the stored range,
``apply_voi_lut`` needs modality values, ``apply_presentation_lut`` ignores MONOCHROME1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from medfuse.bundle.spec import Window
from medfuse.errors import CorruptDicomError
from medfuse.runtime.dicom._quiet import redact
from medfuse.runtime.dicom.geometry import fg_item

__all__ = [
    "VoiLut",
    "VoiWindow",
    "apply_modality_lut",
    "apply_polarity",
    "apply_voi",
    "apply_window",
    "is_inverted",
    "scale_minmax",
    "voi_transforms",
]

F32 = np.float32
Array = NDArray[np.float32]


# ----------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Rescale:
    """Modality LUT as a line: ``x * slope + intercept`` (PS3.3 C.11.1.1.2)."""

    slope: float = 1.0
    intercept: float = 0.0


@dataclass(frozen=True, eq=False)
class Lut:
    """A LUT from a Modality or VOI LUT Sequence item (PS3.3 C.11.1, C.11.2)."""

    first: int
    data: NDArray[np.float32] = field(repr=False)
    bits: int


@dataclass(frozen=True)
class VoiWindow:
    """One window from the file (PS3.3 C.11.2.1.2): center, width, VOI LUT Function."""

    center: float
    width: float
    function: str = "LINEAR"


@dataclass(frozen=True, eq=False)
class VoiLut:
    """One VOI LUT Sequence item; output normalised by ``2**bits - 1``."""

    lut: Lut


def _float(item: Dataset, keyword: str, default: float | None = None) -> float | None:
    value = item.get(keyword, default)
    if value is None or value == "":
        return default
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        value = value[0] if len(value) else default
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise CorruptDicomError(f"{keyword} is not a number") from redact(exc)


def _floats(item: Dataset, keyword: str) -> list[float]:
    value = item.get(keyword)
    if value is None or value == "":
        return []
    values = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise CorruptDicomError(f"{keyword} holds a value that is not a number") from redact(exc)


def _little_endian(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return bool(meta.TransferSyntaxUID.is_little_endian)
    return bool(ds.original_encoding[1] is not False)


def _lut(item: Dataset, ds: Dataset) -> Lut:
    """Parse LUTDescriptor + LUTData (US list or OW bytes) into a float32 table."""
    try:
        desc = [int(v) for v in item.LUTDescriptor]
        n, first, bits = (desc[0] or 65536), desc[1], desc[2]
        elem = item["LUTData"]
        value = elem.value
        if isinstance(value, bytes | bytearray):
            words = np.frombuffer(value, dtype="<u2" if _little_endian(ds) else ">u2")
        else:
            words = np.asarray(list(value) if not isinstance(value, int) else [value])
    except Exception as exc:
        raise CorruptDicomError("a LUT (LUTDescriptor/LUTData) is malformed") from redact(exc)
    if len(words) < n or not 1 <= bits <= 16:
        raise CorruptDicomError(
            f"a LUT declares {n} entries of {bits} bits but holds {len(words)}; "
            "entries must be present and 1..16 bits"
        )
    if first > 32767 and int(ds.get("PixelRepresentation", 0) or 0) == 1:
        first -= 65536  # descriptor read as US although the mapping is signed (US or SS)
    return Lut(first=first, data=np.ascontiguousarray(words[:n], dtype=F32), bits=bits)


def modality_transform(ds: Dataset, frame: int = 0) -> Rescale | Lut | None:
    """The Modality LUT for ``frame``: functional groups, then ModalityLUTSequence, then rescale."""
    item = fg_item(ds, frame, "PixelValueTransformationSequence")
    if item is None and ds.get("ModalityLUTSequence"):
        return _lut(ds.ModalityLUTSequence[0], ds)
    src = item if item is not None else ds
    if "RescaleSlope" not in src and "RescaleIntercept" not in src:
        return None
    return Rescale(
        _float(src, "RescaleSlope", 1.0) or 0.0, _float(src, "RescaleIntercept", 0.0) or 0.0
    )


def voi_transforms(ds: Dataset, frame: int = 0) -> list[VoiWindow | VoiLut]:
    """The VOIs a file offers for ``frame``, in the order ``voi_index`` counts them.

    Windows first (FrameVOILUTSequence of the functional groups, else the top-level
    WindowCenter/WindowWidth pairs, each with the VOILUTFunction), then the items of the
    VOI LUT Sequence.
    """
    src = fg_item(ds, frame, "FrameVOILUTSequence") or ds
    centers, widths = _floats(src, "WindowCenter"), _floats(src, "WindowWidth")
    function = str(src.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    out: list[VoiWindow | VoiLut] = [
        VoiWindow(c, w, function) for c, w in zip(centers, widths, strict=False)
    ]
    for item in ds.get("VOILUTSequence") or ():
        out.append(VoiLut(_lut(item, ds)))
    return out


# ----------------------------------------------------------------------------- kernels (in place)


def rescale_inplace(x: Array, t: Rescale | Lut | None) -> Array:
    """Apply one modality transform to float32 ``x`` in place (LUTs return a new array)."""
    if t is None:
        return x
    if isinstance(t, Rescale):
        if t.slope != 1.0:
            np.multiply(x, F32(t.slope), out=x)
        if t.intercept != 0.0:
            np.add(x, F32(t.intercept), out=x)
        return x
    return _lookup(x, t)


def _lookup(x: Array, lut: Lut) -> Array:
    idx = np.subtract(x, F32(lut.first))
    np.clip(idx, 0, len(lut.data) - 1, out=idx)
    out: Array = lut.data[idx.astype(np.intp)]
    return out


def linear_coefficients(w: VoiWindow) -> tuple[float, float] | None:
    """``(a, b)`` with LINEAR / LINEAR_EXACT output ``clip(a * x + b, 0, 1)``; None for SIGMOID
    and for the LINEAR step (width 1). Raises CorruptDicomError for widths the standard forbids.

    LINEAR (C.11.2.1.2.1): ``((x - (c - 0.5)) / (w - 1) + 0.5)`` clipped, which equals the
    standard's piecewise definition at both ends; LINEAR_EXACT (C.11.2.1.3.2): ``(x - c) / w + 0.5``.
    """
    c, width, fn = w.center, w.width, w.function
    if fn == "SIGMOID":
        if width <= 0:
            raise CorruptDicomError(f"SIGMOID window width {width} is invalid; it must be > 0")
        return None
    if fn == "LINEAR_EXACT":
        if width <= 0:
            raise CorruptDicomError(f"LINEAR_EXACT window width {width} is invalid; it must be > 0")
        return 1.0 / width, 0.5 - c / width
    if fn == "LINEAR":
        if width < 1:
            raise CorruptDicomError(f"LINEAR window width {width} is invalid; it must be >= 1")
        if width == 1:
            return None
        return 1.0 / (width - 1), 0.5 - (c - 0.5) / (width - 1)
    # the value is not echoed: the element may hold any text
    raise CorruptDicomError(
        "VOILUTFunction holds a value that is not a defined term; LINEAR, LINEAR_EXACT and "
        "SIGMOID are defined (PS3.3 C.11.2.1.3)"
    )


def window_inplace(x: Array, w: VoiWindow) -> Array:
    """Map modality values to [0, 1] with a window (PS3.3 C.11.2.1.2.1 / C.11.2.1.3), in place."""
    coef = linear_coefficients(w)
    if coef is None and w.function == "SIGMOID":  # C.11.2.1.3.1
        np.multiply(x, F32(-4.0 / w.width), out=x)
        np.add(x, F32(4.0 * w.center / w.width), out=x)
        with np.errstate(over="ignore"):
            np.exp(x, out=x)
        np.add(x, F32(1.0), out=x)
        np.reciprocal(x, out=x)
        return x
    if coef is None:  # LINEAR with width 1 is a step: x <= c - 0.5 → 0, else 1
        np.greater(x, F32(w.center - 0.5), out=x, casting="unsafe")
        return x
    np.multiply(x, F32(coef[0]), out=x)
    np.add(x, F32(coef[1]), out=x)
    np.clip(x, F32(0.0), F32(1.0), out=x)
    return x


def voi_inplace(x: Array, v: VoiWindow | VoiLut) -> Array:
    """Apply one VOI (window or LUT) to float32 modality values; output in [0, 1]."""
    if isinstance(v, VoiWindow):
        return window_inplace(x, v)
    out = _lookup(x, v.lut)
    np.multiply(out, F32(1.0 / (2**v.lut.bits - 1)), out=out)
    np.clip(out, F32(0.0), F32(1.0), out=out)
    return out


def minmax_inplace(x: Array) -> Array:
    """Scale one frame to [0, 1] by its own min and max; a constant frame becomes zeros."""
    lo, hi = float(x.min()), float(x.max())
    if hi > lo:
        np.subtract(x, F32(lo), out=x)
        np.multiply(x, F32(1.0 / (hi - lo)), out=x)
        np.clip(x, F32(0.0), F32(1.0), out=x)  # float32 rounding can overshoot 1 by an ulp
    else:
        x.fill(0.0)
    return x


# ----------------------------------------------------------------------------- public functions


def _frames(arr: NDArray[Any]) -> Array:
    """A float32 copy viewed as (frames, rows, cols)."""
    out = np.array(arr, dtype=F32, copy=True, order="C")
    return out.reshape((1, *out.shape)) if out.ndim == 2 else out


def _per_frame(arr: NDArray[Any], frame: int, fn: Any, params: Any) -> Array:
    x = _frames(arr)
    shape2d = np.ndim(arr) == 2
    for i in range(x.shape[0]):
        x[i] = fn(x[i], params(frame + i))
    return x[0] if shape2d else x


def apply_modality_lut(arr: NDArray[Any], ds: Dataset, *, frame: int = 0) -> Array:
    """Stored values → modality values (HU for CT), PS3.3 C.11.1 and PS3.4 N.2.1.1.

    Uses, per frame, the Pixel Value Transformation functional group (enhanced multi-frame,
    per-frame then shared), else the Modality LUT Sequence, else RescaleSlope/RescaleIntercept.
    No-op (a float32 copy) when none is present.

    Parameters
    ----------
    arr:
        Stored values, ``(rows, cols)`` or ``(frames, rows, cols)``; any dtype or byte order.
    ds:
        The dataset the values come from.
    frame:
        Index of the first frame in ``arr`` within the file.

    Returns
    -------
    numpy.ndarray
        float32 modality values, same shape as ``arr``.
    """
    return _per_frame(arr, frame, rescale_inplace, lambda f: modality_transform(ds, f))


def apply_voi(arr: NDArray[Any], ds: Dataset, *, index: int = 0, frame: int = 0) -> Array:
    """Modality values → [0, 1] with the file's VOI number ``index``, PS3.3 C.11.2.

    VOIs are counted as :func:`voi_transforms` lists them: windows (with VOILUTFunction LINEAR,
    LINEAR_EXACT or SIGMOID; from the FrameVOILUT functional group for enhanced multi-frame)
    first, then VOI LUT Sequence items (output divided by ``2**bits - 1``). No-op (a float32
    copy, *not* scaled to [0, 1]) when the file has no VOI; ``index`` past the last VOI raises
    :class:`~medfuse.errors.UnsupportedDicomError`.
    """

    def pick(f: int) -> VoiWindow | VoiLut | None:
        vois = voi_transforms(ds, f)
        if not vois:
            return None
        return select_voi(vois, index)

    return _per_frame(arr, frame, lambda x, v: x if v is None else voi_inplace(x, v), pick)


def select_voi(vois: list[VoiWindow | VoiLut], index: int) -> VoiWindow | VoiLut:
    """``vois[index]`` or UnsupportedDicomError saying how many the file has."""
    if 0 <= index < len(vois):
        return vois[index]
    n_win = sum(isinstance(v, VoiWindow) for v in vois)
    from medfuse.errors import UnsupportedDicomError

    raise UnsupportedDicomError(
        f"VOI number {index} was asked for, but the file has {len(vois)} "
        f"({n_win} window(s), {len(vois) - n_win} VOI LUT(s)); use voi_index 0..{len(vois) - 1}"
    )


def apply_window(arr: NDArray[Any], window: Window) -> Array:
    """Modality values → [0, 1] with a fixed window (e.g. a model's HU window), PS3.3 C.11.2.1.2.

    Same formulas as the file's windows: LINEAR, LINEAR_EXACT or SIGMOID.
    """
    x = np.array(arr, dtype=F32, copy=True)
    return window_inplace(x, VoiWindow(window.center, window.width, window.function))


def is_inverted(ds: Dataset) -> bool:
    """Whether P-values run opposite to VOI output: PresentationLUTShape INVERSE, else MONOCHROME1.

    PresentationLUTShape (PS3.3 C.11.6.1.2), when present, decides; otherwise MONOCHROME1
    (PS3.3 C.7.6.3.1.2: minimum value displayed white) means inverted.
    """
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    if shape in ("INVERSE", "IDENTITY"):
        return shape == "INVERSE"
    return str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"


def apply_polarity(arr: NDArray[Any], ds: Dataset) -> Array:
    """VOI output in [0, 1] → P-values with higher = brighter: ``1 - y`` when inverted.

    Inverted means PresentationLUTShape INVERSE, or MONOCHROME1 without a PresentationLUTShape
    (see :func:`is_inverted`); PS3.4 N.2.1.3. Flipping uses the output range ``1 - y``, not the
    image's own maximum. No-op (a float32 copy) otherwise.
    """
    x = np.array(arr, dtype=F32, copy=True)
    if is_inverted(ds):
        np.subtract(F32(1.0), x, out=x)
    return x


def scale_minmax(arr: NDArray[Any]) -> Array:
    """Each frame's values scaled min–max to [0, 1]; a constant frame becomes zeros."""
    x = _frames(arr)
    for i in range(x.shape[0]):
        minmax_inplace(x[i])
    return x[0] if np.ndim(arr) == 2 else x
