"""DICOM read + pixel pipeline + resize: medfuse vs hand-written pydicom + numpy + OpenCV vs MONAI.

Per image: read the file, decode, modality LUT (rescale), the file's first window (or min–max
when it has none), MONOCHROME1 flip, resize to 224×224 float32 with ``cv2.INTER_LINEAR``.
MONAI column: ``LoadImage(reader="PydicomReader")`` + ``ScaleIntensityRange`` with the same
window (taken from the header once, outside the timed loop) + ``Resize((224, 224), bilinear)``;
MONAI applies no MONOCHROME1 flip, so its ``max|diff|`` on such files is ~1 by construction.

Per series: a synthetic 64-slice CT series (512×512 int16, RescaleIntercept -1024, positions
along z, shuffled file names) written once to a temp folder, then folder → float32
(64, 224, 224) with one soft-tissue window: medfuse (``discover_studies`` +
``preprocess_series`` with a volume recipe, the real runtime path) vs hand-written (dcmread
every file, sort by ImagePositionPatient z, rescale, window, ``cv2.resize`` into a
preallocated array) vs MONAI (``LoadImage`` on the folder + ``ScaleIntensityRange`` + ``Resize``).

All pipelines run on the same files, interleaved (rotating which goes first), after a warm-up;
files are in the page cache. Prints tables and writes JSON to
``benchmarks/results/dicom_read-<fingerprint>.json``.

Run: ``python benchmarks/dicom_read.py [--iterations 100] [--series-iterations 10]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medfuse.benchmarks.stats import LatencyStats
from medfuse.bundle.spec import IntensityRecipe, PreprocessRecipe, SeriesSelection, Window
from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id
from medfuse.runtime.dicom import discover_studies, read_frames
from medfuse.runtime.preprocess import preprocess_series

FILES = ["CT_small.dcm", "693_UNCI.dcm", "693_J2KR.dcm", "MR_small.dcm", "RG3_UNCI.dcm"]
SIZE = (224, 224)
SERIES_SLICES = 64
SERIES_MATRIX = 512
SERIES_WINDOW = Window(center=40.0, width=400.0)  # CT soft tissue, LINEAR
LOAD_WARN = 1.5


def window_bounds(center: float, width: float) -> tuple[float, float]:
    """LINEAR window (PS3.3 C.11.2.1.2.1) as the [lo, hi] modality range mapped onto [0, 1]."""
    return center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2


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
        lo, hi = window_bounds(wc, ww)
    else:
        lo, hi = float(arr.min()), float(arr.max())
    arr = np.clip((arr - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        arr = 1.0 - arr
    return cv2.resize(arr, SIZE, interpolation=cv2.INTER_LINEAR)


def medfuse(path: str) -> np.ndarray:
    frames = read_frames(path)
    return cv2.resize(frames[0], SIZE, interpolation=cv2.INTER_LINEAR)


def header_window(path: str) -> tuple[float, float]:
    """The [lo, hi] the baseline uses for ``path`` (first window, else min–max), untimed."""
    ds = pydicom.dcmread(path)
    if "WindowCenter" in ds:
        wc, ww = ds.WindowCenter, ds.WindowWidth
        wc = float(wc[0] if isinstance(wc, pydicom.multival.MultiValue) else wc)
        ww = float(ww[0] if isinstance(ww, pydicom.multival.MultiValue) else ww)
        return window_bounds(wc, ww)
    arr = ds.pixel_array.astype(np.float32)
    arr = arr * float(ds.get("RescaleSlope", 1.0)) + float(ds.get("RescaleIntercept", 0.0))
    return float(arr.min()), float(arr.max())


def monai_version() -> str | None:
    """MONAI's version, or None when it is not importable."""
    # MONAI logs a warning at import when nvImageCodec is absent (CPU-only install): not ours.
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import monai
    except ImportError:
        return None
    return str(monai.__version__)


def monai_image(lo: float, hi: float) -> Callable[[str], np.ndarray]:
    """MONAI's 2-D chain: LoadImage(PydicomReader) → ScaleIntensityRange → Resize, as numpy (H, W)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from monai.transforms import Compose, LoadImage, Resize, ScaleIntensityRange

        chain = Compose(
            [
                LoadImage(reader="PydicomReader", image_only=True, ensure_channel_first=True),
                ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True),
                Resize(SIZE, mode="bilinear"),
            ]
        )

    def run(path: str) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = chain(path)
        # PydicomReader swaps i/j (x, y spatial order): transpose back to (rows, cols).
        return np.asarray(out[0]).T

    return run


# ---------------------------------------------------------------- per-series benchmark


def write_series(folder: Path, seed: int = 0) -> None:
    """Write a synthetic 64-slice CT series (int16, intercept -1024) with shuffled file names."""
    rng = np.random.default_rng(seed)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    yy, xx = np.mgrid[:SERIES_MATRIX, :SERIES_MATRIX]
    r2 = (yy - SERIES_MATRIX / 2) ** 2 + (xx - SERIES_MATRIX / 2) ** 2
    names = [f"{i:04d}.dcm" for i in rng.permutation(SERIES_SLICES)]
    for k in range(SERIES_SLICES):
        body = np.where(r2 < (200 - k) ** 2, 1024 + 40, 0) + np.where(r2 < 40**2, 700, 0)
        noise = rng.normal(0, 20, (SERIES_MATRIX, SERIES_MATRIX))
        pixels = np.clip(body + noise, -32768, 32767).astype(np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality = "CT"
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-200.0, -200.0, -100.0 + 2.5 * k]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [0.78125, 0.78125]
        ds.SliceThickness = 2.5
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / names[k], enforce_file_format=True)


SERIES_RECIPE = PreprocessRecipe(
    selection=SeriesSelection(modalities=("CT",)),
    geometry="volume",
    size=(SERIES_SLICES, *SIZE),
    intensity=IntensityRecipe(method="windows", windows=(SERIES_WINDOW,)),
)


def series_medfuse(folder: Path, out: np.ndarray) -> np.ndarray:
    """The runtime path: discover the folder, then preprocess_series with a volume recipe."""
    series = discover_studies(folder).studies[0].series[0]
    preprocess_series(series, SERIES_RECIPE, out[None])
    return out


def series_medfuse_discovered() -> Callable[[Path, np.ndarray], np.ndarray]:
    """preprocess_series on a series discovered once (what the baseline gets: a known file set)."""
    cache: dict[Path, Any] = {}

    def run(folder: Path, out: np.ndarray) -> np.ndarray:
        if folder not in cache:
            cache[folder] = discover_studies(folder).studies[0].series[0]
        preprocess_series(cache[folder], SERIES_RECIPE, out[None])
        return out

    return run


def series_baseline(folder: Path, out: np.ndarray) -> np.ndarray:
    """Hand-written: dcmread every file, sort by IPP z, rescale, window, cv2.resize into ``out``."""
    dss = [pydicom.dcmread(p) for p in folder.iterdir()]
    dss.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    lo, hi = window_bounds(SERIES_WINDOW.center, SERIES_WINDOW.width)
    scale = 1.0 / (hi - lo)
    for k, ds in enumerate(dss):
        arr = ds.pixel_array.astype(np.float32)
        arr = arr * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        arr = np.clip((arr - lo) * scale, 0.0, 1.0)
        # INTER_AREA for a > 2x reduction, as medfuse's resample rule picks (512 -> 224).
        cv2.resize(arr, SIZE, dst=out[k], interpolation=cv2.INTER_AREA)
    return out


def series_monai() -> Callable[[Path, np.ndarray], np.ndarray]:
    """MONAI: LoadImage(PydicomReader) on the folder → ScaleIntensityRange → Resize."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from monai.transforms import Compose, LoadImage, Resize, ScaleIntensityRange

        lo, hi = window_bounds(SERIES_WINDOW.center, SERIES_WINDOW.width)
        chain = Compose(
            [
                LoadImage(reader="PydicomReader", image_only=True, ensure_channel_first=True),
                ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True),
                # MONAI's spatial order is (x, y, z): in-plane to 224×224, depth kept at 64.
                Resize((*SIZE, SERIES_SLICES), mode="trilinear"),
            ]
        )

    def run(folder: Path, out: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vol = chain(str(folder))
        return np.asarray(vol[0]).transpose(2, 1, 0)  # (x, y, z) -> (z, rows, cols)

    return run


def bench_series(iterations: int, use_monai: bool) -> dict[str, Any]:
    """Time folder → (64, 224, 224) float32 for each pipeline, interleaved."""
    pipelines: dict[str, Callable[[Path, np.ndarray], np.ndarray]] = {
        "baseline": series_baseline,
        "medfuse": series_medfuse,
        "medfuse_discovered": series_medfuse_discovered(),
    }
    if use_monai:
        pipelines["monai"] = series_monai()
    with tempfile.TemporaryDirectory(prefix="medfuse-bench-") as tmp:
        folder = Path(tmp)
        write_series(folder)
        outs = {k: np.empty((SERIES_SLICES, *SIZE), np.float32) for k in pipelines}
        results = {k: fn(folder, outs[k]).copy() for k, fn in pipelines.items()}  # warm-up
        diffs = {k: float(np.abs(v - results["baseline"]).max()) for k, v in results.items()}
        times: dict[str, list[float]] = {k: [] for k in pipelines}
        order = list(pipelines)
        for it in range(iterations):
            rot = order[it % len(order) :] + order[: it % len(order)]
            for key in rot:
                t0 = time.perf_counter()
                pipelines[key](folder, outs[key])
                times[key].append((time.perf_counter() - t0) * 1e3)
    row: dict[str, Any] = {
        "series": f"synthetic CT {SERIES_SLICES}x{SERIES_MATRIX}x{SERIES_MATRIX} int16",
        "output": [SERIES_SLICES, *SIZE],
        "window": SERIES_WINDOW.to_dict(),
        "max_abs_diff_vs_baseline": {k: v for k, v in diffs.items() if k != "baseline"},
        "diff_note": (
            "medfuse resamples modality values then windows (runtime order); the baseline and "
            "MONAI window then resize, so they differ at sharp edges crossing the window; MONAI "
            "resizes bilinear without antialiasing, the baseline uses INTER_AREA"
        ),
    }
    for key in pipelines:
        row[key] = _stats(times[key])
    if not use_monai:
        row["monai"] = "not installed"
    row["speedup_median"] = row["baseline"]["median_ms"] / row["medfuse"]["median_ms"]
    row["speedup_median_discovered"] = (
        row["baseline"]["median_ms"] / row["medfuse_discovered"]["median_ms"]
    )
    return row


def _cell(st: dict[str, float] | str) -> str:
    if isinstance(st, str):
        return f"{st:>22}"
    return f"{st['median_ms']:>12.3f} /{st['p90_ms']:>8.3f}"


def fingerprint() -> dict[str, Any]:
    fp = device_fingerprint()
    fp.update(
        {
            "pydicom": pydicom.__version__,
            "opencv": cv2.__version__,
            "cv2_threads": cv2.getNumThreads(),
            "monai": monai_version() or "not installed",
        }
    )
    if monai_version() is not None:
        import torch

        fp["torch"] = torch.__version__
        fp["torch_threads"] = torch.get_num_threads()
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
    ap.add_argument("--iterations", type=int, default=100, help="per-image iterations")
    ap.add_argument("--series-iterations", type=int, default=10, help="per-series iterations")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    use_monai = monai_version() is not None

    rows = []
    for name in FILES:
        path = get_testdata_file(name)
        if path is None:
            print(f"skip {name}: not available", file=sys.stderr)
            continue
        pipelines: dict[str, Callable[[str], np.ndarray]] = {
            "baseline": baseline,
            "medfuse": medfuse,
        }
        if use_monai:
            pipelines["monai"] = monai_image(*header_window(path))
        for fn in pipelines.values():  # warm-up (page cache, decoder import)
            fn(path)
        times: dict[str, list[float]] = {k: [] for k in pipelines}
        order = list(pipelines)
        for it in range(args.iterations):
            rot = order[it % len(order) :] + order[: it % len(order)]
            for key in rot:
                t0 = time.perf_counter()
                pipelines[key](path)
                times[key].append((time.perf_counter() - t0) * 1e3)
        ref = baseline(path)
        row: dict[str, Any] = {
            "file": name,
            "max_abs_diff": float(np.abs(ref - medfuse(path)).max()),
        }
        if use_monai:
            row["max_abs_diff_monai"] = float(np.abs(ref - pipelines["monai"](path)).max())
        for key in pipelines:
            row[key] = _stats(times[key])
        if not use_monai:
            row["monai"] = "not installed"
        row["speedup_median"] = row["baseline"]["median_ms"] / row["medfuse"]["median_ms"]
        rows.append(row)

    print("per image -> 224x224 float32, median / p90 ms")
    print(
        f"{'file':<16}{'baseline':>22}{'medfuse':>22}{'monai':>22}{'speedup':>9}"
        f"{'max|diff|':>11}{'monai|diff|':>12}"
    )
    for r in rows:
        mdiff = f"{r['max_abs_diff_monai']:>12.2e}" if "max_abs_diff_monai" in r else f"{'-':>12}"
        print(
            f"{r['file']:<16}{_cell(r['baseline'])}{_cell(r['medfuse'])}{_cell(r['monai'])}"
            f"{r['speedup_median']:>8.2f}x{r['max_abs_diff']:>11.2e}{mdiff}"
        )

    series = bench_series(args.series_iterations, use_monai)
    print(f"\nper series: {series['series']} folder -> float32 {series['output']}, median / p90 ms")
    print(f"{'baseline':>22}{'medfuse':>22}{'monai':>22}{'speedup':>9}  max|diff| vs baseline")
    diffs = ", ".join(f"{k} {v:.2e}" for k, v in series["max_abs_diff_vs_baseline"].items())
    print(
        f"{_cell(series['baseline'])}{_cell(series['medfuse'])}{_cell(series['monai'])}"
        f"{series['speedup_median']:>8.2f}x  {diffs}"
    )
    print(
        f"medfuse with the series already discovered: {_cell(series['medfuse_discovered'])}"
        f"  ({series['speedup_median_discovered']:.2f}x the baseline)"
    )

    load_after = os.getloadavg()[0]
    fp = fingerprint()
    host = fingerprint_id(fp)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"dicom_read-{host}.json"
    doc: dict[str, Any] = {
        "benchmark": "dicom_read",
        "iterations": args.iterations,
        "series_iterations": args.series_iterations,
        "size": list(SIZE),
        "machine": fp,
        "loadavg_1min": {"before": load_before, "after": load_after},
        "results": rows,
        "series": series,
    }
    if max(load_before, load_after) > LOAD_WARN:
        doc["load_note"] = (
            f"1-min load average reached {max(load_before, load_after):.2f} "
            f"(> {LOAD_WARN}) on {os.cpu_count()} cores: timings include contention"
        )
        print(doc["load_note"])
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
