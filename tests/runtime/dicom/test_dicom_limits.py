"""Hostile image sizes are refused before anything large is allocated: a sparse 27000² DX, a
deflate bomb. Asserted by the typed error and the ``too_large`` reason, not by measuring memory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, generate_uid

from helpers import screening_fixtures as fx
from medfuse.errors import OversizeDicomError
from medfuse.runtime.dicom import discover_studies, limits
from medfuse.runtime.dicom._read import decode, open_dataset
from medfuse.runtime.results import FAULTS, REASONS

DX_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"


def _dataset(rows: int, cols: int, syntax: str) -> FileDataset:
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
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation, ds.SamplesPerPixel = 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def sparse_dx(path: Path, edge: int = 27000, template: pydicom.Dataset | None = None) -> Path:
    """A DX declaring ``edge``² 16-bit pixels whose Pixel Data is a hole in a sparse file."""
    ds = template if template is not None else _dataset(edge, edge, ExplicitVRLittleEndian)
    ds.Rows = ds.Columns = edge
    if "PixelData" in ds:
        del ds.PixelData
    ds.save_as(path, enforce_file_format=True)
    length = edge * edge * 2
    with open(path, "ab") as fh:
        fh.write(b"\xe0\x7f\x10\x00OW\x00\x00" + length.to_bytes(4, "little"))
        fh.truncate(fh.tell() + length)
    return path


def deflated_dx(path: Path, edge: int) -> Path:
    """A deflated DX of ``edge``² zero pixels: a few KB on disk, ``2·edge²`` bytes inflated."""
    ds = _dataset(edge, edge, DeflatedExplicitVRLittleEndian)
    ds.PixelData = np.zeros((edge, edge), np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_too_large_is_a_fault_reason() -> None:
    assert "too_large" in REASONS and "too_large" in FAULTS
    assert OversizeDicomError("x").reason == "too_large"


def test_a_sparse_27000_square_dx_is_refused_before_its_pixels_are_read(tmp_path: Path) -> None:
    path = sparse_dx(tmp_path / "huge.dcm")
    assert path.stat().st_size > 27000 * 27000 * 2  # declared in full, stored as a hole
    ds = open_dataset(path)  # Pixel Data deferred: not read
    with pytest.raises(OversizeDicomError, match="27000 × 27000"):
        decode(ds)
    (inst,) = [
        i for s in discover_studies(tmp_path).studies for se in s.series for i in se.instances
    ]
    assert inst.problem == "too_large" and inst.facts is None


def test_an_image_within_the_caps_still_decodes(tmp_path: Path) -> None:
    ds = _dataset(64, 64, ExplicitVRLittleEndian)
    ds.PixelData = np.arange(64 * 64, dtype=np.uint16).tobytes()
    ds.save_as(tmp_path / "ok.dcm", enforce_file_format=True)
    assert decode(open_dataset(tmp_path / "ok.dcm")).shape == (1, 64, 64)


def test_a_deflate_bomb_is_refused_before_it_is_inflated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = deflated_dx(tmp_path / "bomb.dcm", 2048)  # 8 MiB inflated, a few KB on disk
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(limits, "max_image_bytes", lambda: 1 << 20)  # inflated cap 65 MiB
    open_dataset(bomb)  # within the cap: read as before
    monkeypatch.setattr(limits, "_HEADER_ROOM", 1 << 20)  # inflated cap 2 MiB
    with pytest.raises(OversizeDicomError, match="inflates to more than 2 MiB"):
        open_dataset(bomb)
    found = discover_studies(tmp_path)
    assert found.skipped.get("too_large") == 1 and not found.studies


def test_oversize_policy_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert limits.oversize(1, 8192, 8192, 16) is None
    assert "8192 × 8192" in (limits.oversize(1, 8193, 8192, 16) or "")
    monkeypatch.setattr(limits, "_available_memory", lambda: 1 << 30)  # 1 GiB free
    assert limits.max_image_bytes() == 256 << 20
    assert "the limit here is 256 MiB" in (limits.oversize(600, 512, 512, 16) or "")
    monkeypatch.setattr(limits, "_available_memory", lambda: 64 << 30)
    assert limits.max_image_bytes() == limits.IMAGE_BYTES_CEILING


def test_scan_names_too_large_for_a_study_with_a_huge_dx(tmp_path: Path) -> None:
    """End to end: a real synthetic study whose radiograph is swapped for a sparse 27000² one."""
    from medfuse.synthetic import generate_studies

    root = tmp_path / "in"
    generate_studies(root, 1, seed=3)
    xr = [p for p in root.rglob("*") if p.is_file() and fx.modality_of(p) in ("DX", "CR")]
    assert xr, "the synthetic study has a radiograph"
    template = pydicom.dcmread(xr[0])
    sparse_dx(xr[0], template=template)
    proc = subprocess.run(
        [*fx.CLI, "scan", str(root), "--json"],
        capture_output=True,
        text=True,
        env=fx.cli_env(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(proc.stdout)
    assert "too_large" in json.dumps(payload["studies"])
