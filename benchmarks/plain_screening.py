"""The screening script a user would write by hand: the baseline ``medfuse run`` must beat.

Sequential and plain: walk the folder, read every file fully with pydicom, group by study and
series, take the series the model's recipes ask for (most slices for CT / MR, largest X-ray),
rescale, sort slices by position, resize with OpenCV, window / normalise with numpy, and run
ONNX Runtime (default options) one study at a time. It reads the recipe numbers from the
bundle's manifest, as a user who knows their model would write them in.

Usage: ``python benchmarks/plain_screening.py STUDIES BUNDLE_DIR OUT.jsonl``. Writes one line
per study (``{"uid": ..., "top": ...}``) for the agreement check of ``run_vs_script.py``;
synthetic studies only.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pydicom


def read_tree(root: Path) -> dict[str, dict[str, list[pydicom.Dataset]]]:
    studies: dict[str, dict[str, list[pydicom.Dataset]]] = defaultdict(lambda: defaultdict(list))
    for folder, _dirs, files in os.walk(root):
        for name in sorted(files):
            try:
                ds = pydicom.dcmread(os.path.join(folder, name))
            except Exception:
                continue
            if "PixelData" not in ds or "StudyInstanceUID" not in ds:
                continue
            studies[str(ds.StudyInstanceUID)][str(ds.SeriesInstanceUID)].append(ds)
    return studies


def resize_axis0(vol: np.ndarray, n: int) -> np.ndarray:
    d, h, w = vol.shape
    flat = vol.reshape(d, h * w)
    interp = cv2.INTER_AREA if d > 2 * n else cv2.INTER_LINEAR
    return cv2.resize(flat, (h * w, n), interpolation=interp).reshape(n, h, w)


def resize_2d(img: np.ndarray, h: int, w: int) -> np.ndarray:
    shrink = img.shape[0] > 2 * h or img.shape[1] > 2 * w
    grow = img.shape[0] < h or img.shape[1] < w
    interp = cv2.INTER_AREA if shrink and not grow else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def volume(series: list[pydicom.Dataset], size: list[int]) -> np.ndarray:
    first = series[0]
    o = np.array(first.ImageOrientationPatient, dtype=float)
    normal = np.cross(o[:3], o[3:])
    series = sorted(series, key=lambda d: float(np.dot(normal, d.ImagePositionPatient)))
    d, h, w = size
    slices = []
    for ds in series:
        px = ds.pixel_array.astype(np.float32)
        px = px * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        slices.append(resize_2d(px, h, w))
    return resize_axis0(np.stack(slices), d)


def window(v: np.ndarray, center: float, width: float) -> np.ndarray:
    return np.clip((v - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def xray(ds: pydicom.Dataset, size: list[int]) -> np.ndarray:
    px = ds.pixel_array.astype(np.float32)
    px = px * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    if "WindowCenter" in ds:
        c = ds.WindowCenter[0] if ds["WindowCenter"].VM > 1 else ds.WindowCenter
        w = ds.WindowWidth[0] if ds["WindowWidth"].VM > 1 else ds.WindowWidth
        px = window(px, float(c), float(w))
    else:
        px = (px - px.min()) / max(float(px.max() - px.min()), 1e-6)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        px = 1.0 - px
    return resize_2d(px, size[0], size[1])


def main(root: str, bundle: str, out: str) -> None:
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    inputs = {i["name"]: i for i in manifest["model"]["inputs"]}
    model = str(Path(bundle) / manifest["variants"]["fp32"]["file"])
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    labels = manifest["model"]["outputs"][0]["labels"]
    with open(out, "w") as fh:
        for uid, series in sorted(read_tree(Path(root)).items()):
            feeds: dict[str, Any] = {}
            present = []
            for name in ("ct", "mr", "xr"):
                recipe = inputs[name]["preprocessing"]
                mods = recipe["selection"]["modalities"]
                shape = inputs[name]["shape"][1:]
                cands = [s for s in series.values() if str(s[0].Modality) in mods]
                x = np.zeros(shape, dtype=np.float32)
                intensity = recipe["intensity"]
                if name in ("ct", "mr"):
                    cands = [s for s in cands if len(s) >= recipe["selection"]["min_frames"]]
                if cands and name == "ct":
                    v = volume(max(cands, key=len), recipe["size"])
                    for c, win in enumerate(intensity["windows"]):
                        x[c] = window(v, win["center"], win["width"])
                elif cands and name == "mr":
                    v = volume(max(cands, key=len), recipe["size"])
                    lo, hi = np.percentile(v, intensity["percentiles"])
                    x[0] = np.clip((v - lo) / max(hi - lo, 1e-6), 0, 1)
                elif cands:
                    ds = max((s[0] for s in cands), key=lambda d: d.Rows * d.Columns)
                    x[0] = xray(ds, recipe["size"])
                if cands:
                    mean = np.array(intensity["mean"], np.float32).reshape(-1, *[1] * (x.ndim - 1))
                    std = np.array(intensity["std"], np.float32).reshape(-1, *[1] * (x.ndim - 1))
                    x = (x - mean) / std
                present.append(1.0 if cands else 0.0)
                feeds[name] = x[None].astype(np.float32)
            if not any(present):
                continue
            feeds["presence"] = np.array([present], dtype=np.float32)
            logits = session.run(None, feeds)[0][0]
            fh.write(json.dumps({"uid": uid, "top": labels[int(np.argmax(logits))]}) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
