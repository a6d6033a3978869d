"""An independent reference of the grayscale pipeline, written from the standard.

Plain numpy in float64 on ``ds.pixel_array`` (pydicom's decoder) and the header values, with
the piecewise definitions of PS3.3 C.11.1 (modality LUT), C.11.2.1.2 / C.11.2.1.3 (windows),
C.11.2 (VOI LUT) and C.11.6.1.2 / C.7.6.3.1.2 (polarity). It shares no code with medfuse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset


def stored_values(ds: Dataset) -> np.ndarray:
    arr = np.asarray(ds.pixel_array, dtype=np.float64)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return arr.reshape(frames, int(ds.Rows), int(ds.Columns))


def _fg(ds: Dataset, frame: int, kw: str) -> Any:
    per = ds.get("PerFrameFunctionalGroupsSequence")
    if per is not None and kw in per[frame]:
        return per[frame][kw][0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared is not None and kw in shared[0]:
        return shared[0][kw][0]
    return None


def _lut_table(item: Dataset, ds: Dataset) -> tuple[int, np.ndarray, int]:
    n, first, bits = list(item.LUTDescriptor)
    n = n or 65536
    data = item.LUTData
    if isinstance(data, bytes):
        le = ds.file_meta.TransferSyntaxUID.is_little_endian
        data = np.frombuffer(data, dtype="<u2" if le else ">u2")
    return first, np.asarray(data, dtype=np.float64)[:n], bits


def _apply_lut(x: np.ndarray, first: int, table: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    below = x < first
    above = x >= first + len(table) - 1
    mid = ~below & ~above
    out[below] = table[0]
    out[above] = table[-1]
    out[mid] = table[(x[mid] - first).astype(np.int64)]
    return out


def modality(ds: Dataset, x: np.ndarray, frame: int) -> np.ndarray:
    item = _fg(ds, frame, "PixelValueTransformationSequence")
    if item is not None:
        return x * float(item.RescaleSlope) + float(item.RescaleIntercept)
    if "ModalityLUTSequence" in ds:
        first, table, _ = _lut_table(ds.ModalityLUTSequence[0], ds)
        return _apply_lut(x, first, table)
    if "RescaleSlope" in ds:
        return x * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return x


def window(x: np.ndarray, c: float, w: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT), C.11.2.1.3.1 (SIGMOID); y in [0, 1]."""
    ymin, ymax = 0.0, 1.0
    if function == "SIGMOID":
        return (ymax - ymin) / (1.0 + np.exp(-4.0 * (x - c) / w)) + ymin
    if function == "LINEAR_EXACT":
        y = ((x - c) / w + 0.5) * (ymax - ymin) + ymin
        y = np.where(x <= c - w / 2, ymin, y)
        return np.where(x > c + w / 2, ymax, y)
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (ymax - ymin) + ymin
    y = np.where(x <= c - 0.5 - (w - 1) / 2, ymin, y)
    return np.where(x > c - 0.5 + (w - 1) / 2, ymax, y)


def _as_list(v: Any) -> list[float]:
    if v is None:
        return []
    if isinstance(v, pydicom.multival.MultiValue | list | tuple):
        return [float(a) for a in v]
    return [float(v)]


def vois(ds: Dataset, frame: int) -> list[tuple[str, Any]]:
    src = _fg(ds, frame, "FrameVOILUTSequence") or ds
    centers, widths = _as_list(src.get("WindowCenter")), _as_list(src.get("WindowWidth"))
    function = str(src.get("VOILUTFunction", "LINEAR") or "LINEAR")
    out: list[tuple[str, Any]] = [
        ("window", (c, w, function)) for c, w in zip(centers, widths, strict=False)
    ]
    for item in ds.get("VOILUTSequence", []):
        out.append(("lut", _lut_table(item, ds)))
    return out


def inverted(ds: Dataset) -> bool:
    if "PresentationLUTShape" in ds:
        return ds.PresentationLUTShape == "INVERSE"
    return ds.PhotometricInterpretation == "MONOCHROME1"


def pipeline(ds: Dataset, voi_index: int = 0) -> np.ndarray:
    """Display values in [0, 1], higher = brighter, float64 (frames, rows, cols)."""
    raw = stored_values(ds)
    out = np.empty_like(raw)
    for f in range(raw.shape[0]):
        x = modality(ds, raw[f], f)
        options = vois(ds, f)
        if options:
            kind, params = options[voi_index]
            if kind == "window":
                y = window(x, *params)
            else:
                first, table, bits = params
                y = _apply_lut(x, first, table) / (2**bits - 1)
        else:
            lo, hi = x.min(), x.max()
            y = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        out[f] = 1.0 - y if inverted(ds) else y
    return out
