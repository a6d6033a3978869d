"""Peak memory of hostile inputs, before and after the reading caps, in one run.

Three cases, each in a fresh subprocess whose peak RSS is taken from ``wait4``:

- ``deflate_bomb``: ``medfuse run`` on a folder holding one Deflated Explicit VR Little Endian
  DX file of a few MB that inflates to about 1.9 GB (15 frames of 8192² zeros);
- ``sparse_dx``: ``medfuse run`` on a synthetic study whose radiograph is replaced by a DX that
  declares 27000 × 27000 16-bit pixels, its Pixel Data a hole in a sparse file;
- ``sparse_tar``: :func:`medfuse.serving.study.decode_study` (what ``medfuse serve`` does with an
  upload) on a 2 KB GNU sparse tar declaring one 2 GiB member (the server itself needs the
  PyTriton environment; the function is the same code).

"before" runs the same commands with ``PYTHONPATH`` at another source tree (``--base-src``, e.g.
a worktree of the commit before the caps); "after" with this tree's ``src``. Inputs are built
once and shared. Writes ``benchmarks/results/hostile_inputs-<fingerprint-id>.json`` and
``.md``. Heavy: "before" allocates several GB; run it on a machine with 16 GB free.

Run: ``python benchmarks/hostile_inputs.py --base-src /path/to/base/src [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from medfuse.devices.fingerprint import device_fingerprint, fingerprint_id

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
DX_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"
DEFLATED = "1.2.840.10008.1.2.1.99"
SPARSE_TAR_BYTES = 2 << 30

DECODE_TAR = """
import sys
from medfuse.serving.study import decode_study
try:
    files = decode_study(open(sys.argv[1], "rb").read())
    print("decoded", len(files), "file(s),", sum(len(f) for f in files), "bytes")
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
"""


def _dx_header(rows: int, cols: int, frames: int, syntax: str) -> Any:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset("x", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = DX_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.Rows, ds.Columns = rows, cols
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def deflate_bomb(path: Path, edge: int = 8192, frames: int = 15) -> int:
    """Write a deflated DX whose data set inflates to ``frames·edge²·2`` bytes; returns that."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info

    ds = _dx_header(edge, edge, frames, DEFLATED)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    length = frames * edge * edge * 2
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, ds.file_meta, enforce_standard=True)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as fh:
        fh.write(head.getvalue())
        fh.write(deflater.compress(body.getvalue()))
        fh.write(deflater.compress(b"\xe0\x7f\x10\x00OW\x00\x00" + length.to_bytes(4, "little")))
        zeros = bytes(64 << 20)
        left = length
        while left:
            n = min(left, len(zeros))
            fh.write(deflater.compress(zeros[:n]))
            left -= n
        fh.write(deflater.flush())
    return length


def sparse_dx_study(root: Path) -> None:
    """One synthetic study whose radiograph declares 27000² pixels (a sparse file)."""
    import pydicom

    from medfuse.synthetic import generate_studies

    generate_studies(root, 1, seed=11)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if str(ds.get("Modality", "")) not in ("DX", "CR"):
            continue
        ds.Rows = ds.Columns = 27000
        ds.save_as(path, enforce_file_format=True)
        length = 27000 * 27000 * 2
        with open(path, "ab") as fh:
            fh.write(b"\xe0\x7f\x10\x00OW\x00\x00" + length.to_bytes(4, "little"))
            fh.truncate(fh.tell() + length)
        return
    raise RuntimeError("the synthetic study has no radiograph")


def sparse_tar(path: Path, real_size: int = SPARSE_TAR_BYTES) -> None:
    """A 2 KB old-GNU sparse tar holding one member of ``real_size`` bytes."""

    def octal(value: int, width: int) -> bytes:
        return f"{value:0{width - 1}o}".encode("ascii") + b"\0"

    h = bytearray(512)
    h[0:8] = b"huge.dcm"
    h[100:108], h[108:116], h[116:124] = octal(0o644, 8), octal(0, 8), octal(0, 8)
    h[124:136], h[136:148] = octal(512, 12), octal(0, 12)
    h[156:157] = b"S"
    h[257:265] = b"ustar  \0"
    h[386:398], h[398:410] = octal(real_size - 512, 12), octal(512, 12)
    h[483:495] = octal(real_size, 12)
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}".encode("ascii") + b"\0 "
    path.write_bytes(bytes(h) + b"\x01" * 512 + b"\0" * 1024)


def measure(cmd: list[str], src: Path, work: Path) -> dict[str, Any]:
    """Run ``cmd`` with ``PYTHONPATH=src``; exit code, peak RSS (MB), wall time, last line."""
    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(src),
        HOME=str(work / "home"),
        MEDFUSE_KEY_SECRET_FILE=str(work / "home" / "secret"),
        MEDFUSE_CACHE_DIR=str(work / "cache"),
    )
    err_path = work / "stderr.txt"
    t0 = time.perf_counter()
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    lines = [ln for ln in err_path.read_text(errors="replace").splitlines() if ln.strip()]
    return {
        "rc": os.waitstatus_to_exitcode(status),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "wall_s": round(wall, 2),
        "last_line": lines[-1][:300] if lines else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-src", type=Path, required=True, help="src of the 'before' tree")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medfuse-hostile-") as tmp:
        work = Path(tmp)
        (work / "bomb").mkdir()
        inflated = deflate_bomb(work / "bomb" / "bomb.dcm")
        sparse_dx_study(work / "dx")
        sparse_tar(work / "sparse.tar")
        inputs = {
            "deflate_bomb": {
                "file_bytes": (work / "bomb" / "bomb.dcm").stat().st_size,
                "inflated_bytes": inflated,
            },
            "sparse_dx": {"declared_pixel_bytes": 27000 * 27000 * 2},
            "sparse_tar": {
                "file_bytes": (work / "sparse.tar").stat().st_size,
                "declared_bytes": SPARSE_TAR_BYTES,
            },
        }
        cli = [sys.executable, "-m", "medfuse.cli.main"]
        cases = {
            "deflate_bomb": lambda out: [*cli, "run", str(work / "bomb"), "--out", str(out)],
            "sparse_dx": lambda out: [*cli, "run", str(work / "dx"), "--out", str(out)],
            "sparse_tar": lambda out: [sys.executable, "-c", DECODE_TAR, str(work / "sparse.tar")],
        }
        rows: dict[str, dict[str, Any]] = {}
        for name, make in cases.items():
            rows[name] = {}
            for label, src in (("before", args.base_src), ("after", SRC)):
                out = work / f"{name}-{label}.jsonl"
                print(f"{name} / {label} …", file=sys.stderr, flush=True)
                rows[name][label] = measure(make(out), src.resolve(), work)
                if out.exists():
                    rows[name][label]["records"] = [
                        {k: r.get(k) for k in ("status", "error_type", "reasons")}
                        for r in map(json.loads, out.read_text().splitlines())
                    ]
    result = {
        "benchmark": "hostile_inputs",
        "device": device_fingerprint(),
        "inputs": inputs,
        "cases": rows,
        "note": "peak RSS of one subprocess per case (wait4 ru_maxrss); other engineers shared "
        "the machine's 2 cores, so wall times are indicative only",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"hostile_inputs-{fingerprint_id(device_fingerprint())}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(rows) + "\n")
    print(markdown(rows))
    return 0


def markdown(rows: dict[str, dict[str, Any]]) -> str:
    """A table of peak RSS before / after per case (fits 80 columns)."""
    lines = [
        "| case         | before MB | after MB | ratio | before rc | after rc |",
        "|--------------|----------:|---------:|------:|----------:|---------:|",
    ]
    for name, r in rows.items():
        b, a = r["before"], r["after"]
        ratio = b["peak_rss_mb"] / a["peak_rss_mb"] if a["peak_rss_mb"] else float("nan")
        lines.append(
            f"| {name:<12} | {b['peak_rss_mb']:>9.0f} | {a['peak_rss_mb']:>8.0f} "
            f"| {ratio:>5.1f} | {b['rc']:>9} | {a['rc']:>8} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
