"""DICOM read + pixel pipeline + resize: medfuse vs hand-written pydicom + numpy + OpenCV.

Per image: read the file, decode, modality LUT (rescale), the file's first window (or min–max
when it has none), MONOCHROME1 flip, resize to 224×224 float32 with ``cv2.INTER_LINEAR``.
Both pipelines run on the same files, interleaved (alternating which goes first), after a
warm-up; files are in the page cache. Prints a table and writes JSON to
``benchmarks/results/dicom_read-<fingerprint>.json``.

Run: ``python benchmarks/dicom_read.py [--iterations 100]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from pydicom.data import get_testdata_file

from medfuse.benchmarks.stats import LatencyStats
from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id
from medfuse.runtime.dicom import read_frames

FILES = ["CT_small.dcm", "693_UNCI.dcm", "693_J2KR.dcm", "MR_small.dcm", "RG3_UNCI.dcm"]
SIZE = (224, 224)


def baseline(path: str) -> np.ndarray:
    """What a careful engineer writes by hand with pydicom + numpy + OpenCV."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.astype(np.float32)
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    arr = arr * slope + intercept
    if "WindowCenter" in ds:
        wc, ww = ds.WindowCenter, ds.WindowWidth
        wc = float(wc[0] if isinstance(wc, pydicom.multival.MultiValue) else wc)
        ww = float(ww[0] if isinstance(ww, pydicom.multival.MultiValue) else ww)
        lo, hi = wc - 0.5 - (ww - 1) / 2, wc - 0.5 + (ww - 1) / 2
    else:
        lo, hi = float(arr.min()), float(arr.max())
    arr = np.clip((arr - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        arr = 1.0 - arr
    return cv2.resize(arr, SIZE, interpolation=cv2.INTER_LINEAR)


def medfuse(path: str) -> np.ndarray:
    frames = read_frames(path)
    return cv2.resize(frames[0], SIZE, interpolation=cv2.INTER_LINEAR)


def fingerprint() -> dict[str, Any]:
    fp = device_fingerprint()
    fp.update(
        {
            "pydicom": pydicom.__version__,
            "opencv": cv2.__version__,
            "cv2_threads": cv2.getNumThreads(),
        }
    )
    return fp


def _stats(ms: list[float]) -> dict[str, float]:
    st = LatencyStats.from_samples(ms)
    return {
        "median_ms": st.p50,
        "p90_ms": st.p90,
        "mean_ms": st.mean,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)

    pipelines: dict[str, Callable[[str], np.ndarray]] = {"baseline": baseline, "medfuse": medfuse}
    rows = []
    for name in FILES:
        path = get_testdata_file(name)
        if path is None:
            print(f"skip {name}: not available", file=sys.stderr)
            continue
        for fn in pipelines.values():  # warm-up (page cache, decoder import)
            fn(path)
        times: dict[str, list[float]] = {k: [] for k in pipelines}
        order = list(pipelines)
        for it in range(args.iterations):
            for key in order if it % 2 == 0 else reversed(order):
                t0 = time.perf_counter()
                pipelines[key](path)
                times[key].append((time.perf_counter() - t0) * 1e3)
        diff = float(np.abs(baseline(path) - medfuse(path)).max())
        row = {"file": name, "max_abs_diff": diff}
        for key in pipelines:
            row[key] = _stats(times[key])
        row["speedup_median"] = row["baseline"]["median_ms"] / row["medfuse"]["median_ms"]
        rows.append(row)

    print(
        f"{'file':<16}{'baseline med/p90 ms':>22}{'medfuse med/p90 ms':>22}{'speedup':>9}{'max|diff|':>11}"
    )
    for r in rows:
        b, m = r["baseline"], r["medfuse"]
        print(
            f"{r['file']:<16}{b['median_ms']:>12.3f} /{b['p90_ms']:>7.3f}"
            f"{m['median_ms']:>12.3f} /{m['p90_ms']:>7.3f}{r['speedup_median']:>8.2f}x{r['max_abs_diff']:>11.2e}"
        )
    fp = fingerprint()
    host = fingerprint_id(fp)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"dicom_read-{host}.json"
    out.write_text(
        json.dumps(
            {
                "benchmark": "dicom_read",
                "iterations": args.iterations,
                "size": list(SIZE),
                "machine": fp,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
