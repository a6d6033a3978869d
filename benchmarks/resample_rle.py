"""Volume resample vs a plain per-slice OpenCV resize, and an RLE series load vs MONAI.

``resample``: :func:`medfuse.runtime.preprocess.resample_volume_into` against the code a user
would write with OpenCV (``cv2.resize`` per slice in-plane into a new stack, then ``cv2.resize``
along depth; flags by the same rule), on the shapes the synthetic studies have and two more.
Same values asserted (max |diff| ≤ 1e-6), then timed interleaved (rotating order).

``rle``: the 64-slice synthetic CT series of ``dicom_read.py`` (512×512 by default) written with the
RLE Lossless transfer syntax, folder → (64, 224, 224) float32: medfuse (discover +
``preprocess_series``), medfuse on a series discovered once, the hand-written pydicom + OpenCV
loop and MONAI (``LoadImage(PydicomReader)`` + ``ScaleIntensityRange`` + ``Resize``), interleaved.
Reports the RLE decoder pydicom uses (pylibjpeg-rle when installed).

The machine may be shared: the JSON holds ratios within one run and the load average.
Writes ``benchmarks/results/resample_rle-<host>.json``.
Run: ``python benchmarks/resample_rle.py [--iterations 200] [--series-iterations 10]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
from pydicom.uid import RLELossless

sys.path.insert(0, str(Path(__file__).parent))

import dicom_read as dr
from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id
from medfuse.runtime.preprocess import resample_volume_into

SHAPES = [
    ((42, 160, 160), (32, 64, 64)),  # synthetic CT
    ((32, 112, 144), (24, 64, 64)),  # synthetic MR
    ((128, 256, 256), (32, 64, 64)),  # a thin-slice CT
    ((20, 128, 128), (32, 64, 64)),  # upsampling in depth
]


def opencv_plain(vol: np.ndarray, size: tuple[int, int, int]) -> np.ndarray:
    """What a user writes: per-slice cv2.resize into a stack, then cv2.resize along depth."""
    d, h, w = size
    d0, h0, w0 = vol.shape
    grows = h > h0 or w > w0
    flag = cv2.INTER_AREA if (h0 > 2 * h or w0 > 2 * w) and not grows else cv2.INTER_LINEAR
    planes = np.stack([cv2.resize(s, (w, h), interpolation=flag) for s in vol])
    depth_flag = cv2.INTER_AREA if d0 > 2 * d else cv2.INTER_LINEAR
    return cv2.resize(planes.reshape(d0, h * w), (h * w, d), interpolation=depth_flag).reshape(
        d, h, w
    )


def _interleaved(fns: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    for it in range(n):
        for key in order[it % len(order) :] + order[: it % len(order)]:
            t0 = time.perf_counter()
            fns[key]()
            times[key].append((time.perf_counter() - t0) * 1e3)
    return times


def bench_resample(iterations: int) -> list[dict[str, Any]]:
    rows = []
    for src, dst in SHAPES:
        vol = np.random.default_rng(0).normal(size=src).astype(np.float32) * 400.0
        out = np.empty(dst, np.float32)
        resample_volume_into(vol, dst, out)
        diff = float(np.abs(out - opencv_plain(vol, dst)).max())
        assert diff <= 1e-6, f"values differ by {diff}"
        times = _interleaved(
            {
                "medfuse": lambda v=vol, d=dst, o=out: resample_volume_into(v, d, o),
                "opencv_plain": lambda v=vol, d=dst: opencv_plain(v, d),
            },
            iterations,
        )
        med = {k: statistics.median(v) for k, v in times.items()}
        paired = statistics.median(
            b / a for a, b in zip(times["medfuse"], times["opencv_plain"], strict=True)
        )
        rows.append(
            {
                "from": list(src),
                "to": list(dst),
                "max_abs_diff": diff,
                "median_ms": med,
                "speedup_vs_opencv_plain": round(med["opencv_plain"] / med["medfuse"], 3),
                "paired_speedup_vs_opencv_plain": round(paired, 3),
            }
        )
        print(
            f"resample {src} -> {dst}: medfuse {med['medfuse']:.3f} ms, plain OpenCV "
            f"{med['opencv_plain']:.3f} ms, ×{rows[-1]['speedup_vs_opencv_plain']:.2f} "
            f"(paired ×{paired:.2f}), max|diff| {diff:.1e}"
        )
    return rows


def write_rle_series(folder: Path) -> None:
    """dicom_read's synthetic CT series, re-encoded RLE Lossless."""
    dr.write_series(folder)
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path, enforce_file_format=True)


def _monai_load_only() -> Callable[[Path, np.ndarray], np.ndarray]:
    """MONAI's LoadImage(PydicomReader) on the folder: decoded, rescaled volume, nothing else."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from monai.transforms import LoadImage

        load = LoadImage(reader="PydicomReader", image_only=True)

    def run(folder: Path, out: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(load(str(folder)))

    return run


def _medfuse_load_only() -> Callable[[Path, np.ndarray], np.ndarray]:
    """medfuse's series load (discover + load_volume: decoded, modality values, sorted)."""
    from medfuse.runtime.dicom import discover_studies
    from medfuse.runtime.dicom.volume import load_volume

    def run(folder: Path, out: np.ndarray) -> np.ndarray:
        series = discover_studies(folder).studies[0].series[0]
        return np.asarray(load_volume(series).values)

    return run


def bench_rle(iterations: int) -> dict[str, Any]:
    from pydicom.pixels.decoders.base import get_decoder

    pipelines: dict[str, Callable[[Path, np.ndarray], np.ndarray]] = {
        "medfuse": dr.series_medfuse,
        "medfuse_discovered": dr.series_medfuse_discovered(),
        "hand_written": dr.series_baseline,
    }
    if dr.monai_version() is not None:
        pipelines["monai"] = dr.series_monai()
        pipelines["monai_load_only"] = _monai_load_only()
    pipelines["medfuse_load_only"] = _medfuse_load_only()
    out_shape = (dr.SERIES_SLICES, *dr.SIZE)
    with tempfile.TemporaryDirectory(prefix="medfuse-rle-") as tmp:
        folder = Path(tmp)
        write_rle_series(folder)
        outs = {k: np.empty(out_shape, np.float32) for k in pipelines}
        first = {k: fn(folder, outs[k]).copy() for k, fn in pipelines.items()}
        times = _interleaved(
            {k: (lambda f=fn, o=outs[k]: f(folder, o)) for k, fn in pipelines.items()}, iterations
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    loads = {k: v for k, v in first.items() if k.endswith("load_only")}
    first = {k: v for k, v in first.items() if not k.endswith("load_only")}
    row: dict[str, Any] = {
        "series": f"synthetic CT {dr.SERIES_SLICES}x{dr.SERIES_MATRIX}x{dr.SERIES_MATRIX} int16, RLE",
        "decoder_plugins": list(get_decoder(RLELossless).available_plugins),
        "median_ms": med,
        "max_abs_diff_vs_hand_written": {
            k: float(np.abs(v - first["hand_written"]).max()) for k, v in first.items()
        },
    }
    for k in first:
        if k != "medfuse":
            row[f"medfuse_speedup_vs_{k}"] = round(med[k] / med["medfuse"], 3)
    if "monai_load_only" in loads:
        m, f = loads["monai_load_only"], loads["medfuse_load_only"]
        row["load_only_max_abs_diff"] = float(np.abs(np.transpose(m, (2, 1, 0)) - f).max())
        row["medfuse_load_speedup_vs_monai_load"] = round(
            med["monai_load_only"] / med["medfuse_load_only"], 3
        )
    if "monai" in med:
        row["medfuse_discovered_speedup_vs_monai"] = round(
            med["monai"] / med["medfuse_discovered"], 3
        )
    print(
        f"RLE series load (ms, median of {iterations}): "
        + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
    )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=200, help="per resample shape")
    ap.add_argument("--series-iterations", type=int, default=10)
    ap.add_argument("--matrix", type=int, default=512, help="RLE series rows = columns")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    dr.SERIES_MATRIX = args.matrix
    load = os.getloadavg()[0]
    doc = {
        "benchmark": "resample_rle",
        "note": "shared machine: compare ratios within this run",
        "loadavg_1min_before": round(load, 2),
        "opencv_threads": cv2.getNumThreads(),
        "resample": bench_resample(args.iterations),
        "rle": bench_rle(args.series_iterations),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
    }
    fp = device_fingerprint()
    doc["machine"] = fp
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"resample_rle-{fingerprint_id(fp)}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
