"""discover_studies, load_volume and load_image on real and synthetic series."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medfuse.errors import CorruptDicomError, InconsistentSeriesError, UnsupportedDicomError
from medfuse.runtime.dicom import (
    Discovery,
    discover_studies,
    load_image,
    load_volume,
    read_frames,
)
from medfuse.runtime.dicom.study import Series


def _path(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not available")
    return Path(path)


def _dicomdirtests() -> Path:
    return _path("dicomdirtests/DICOMDIR").parent


def _series_with(discovery: Discovery, folder: str) -> Series:
    for study in discovery.studies:
        for series in study.series:
            if series.instances and series.instances[0].path.parent.name == folder:
                return series
    raise AssertionError(f"no series in {folder}")


def test_discovery_of_pydicoms_dicomdir_tree() -> None:
    found = discover_studies(_dicomdirtests())
    assert found.skipped["dicomdir"] >= 6
    assert found.files_seen == sum(found.skipped.values()) + sum(
        len(se.instances) for st in found.studies for se in st.series
    )
    ct5n = _series_with(found, "CT5N")
    assert ct5n.modality == "CT" and len(ct5n.instances) == 5 and ct5n.frames == 5
    assert {i.rows for i in ct5n.instances} == {ct5n.rows}
    assert all(i.position is not None and i.orientation is not None for i in ct5n.instances)
    assert ct5n.uid not in repr(ct5n) and str(ct5n.instances[0].path) not in repr(ct5n)


def test_discovery_mixed_folder(tmp_path: Path) -> None:
    root = tmp_path / "export"
    (root / "a" / "b" / "c").mkdir(parents=True)
    shutil.copy(_path("CT_small.dcm"), root / "a" / "IMG0001")  # no extension
    shutil.copy(_path("MR_small.dcm"), root / "a" / "b" / "x.DCM")
    shutil.copy(_path("eCT_Supplemental.dcm"), root / "a" / "b" / "c" / "enh")
    shutil.copy(_path("SC_rgb.dcm"), root / "rgb.dcm")
    shutil.copy(_path("rtplan.dcm"), root / "plan.dcm")
    shutil.copy(_path("test-SR.dcm"), root / "sr")
    shutil.copy(_path("dicomdirtests/DICOMDIR"), root / "DICOMDIR")
    shutil.copy(_path("emri_small_jpeg_2k_lossless_too_short.dcm"), root / "short.dcm")
    (root / "notes.txt").write_text("hello")
    (root / "a" / "junk.dcm").write_bytes(b"\x00" * 300)
    (root / "a" / "empty").touch()
    found = discover_studies(root)
    assert found.files_seen == 11
    assert dict(found.skipped) == {"non_image": 2, "dicomdir": 1, "not_dicom": 3}
    series = [se for st in found.studies for se in st.series]
    assert sorted(se.modality for se in series) == ["CT", "CT", "MR", "MR", "OT"]
    # headers only: a file truncated inside its pixel data is found, and fails when read
    short = next(se for se in series if se.instances[0].path.name == "short.dcm")
    with pytest.raises(CorruptDicomError):
        read_frames(short.instances[0].path)
    enh = next(se for se in series if se.frames == 2)
    inst = enh.instances[0]
    assert inst.position == (99.5, -301.5, -159.0)  # from the per-frame functional group
    assert inst.pixel_spacing == (0.388672, 0.388672)
    rgb = next(se for se in series if se.modality == "OT")
    assert not rgb.instances[0].is_grayscale
    with pytest.raises(UnsupportedDicomError):
        read_frames(rgb.instances[0].path)
    # deterministic: the same answer twice, whatever the walk order
    again = discover_studies(root)
    assert [s.uid for s in again.studies] == [s.uid for s in found.studies]
    assert [[i.path for se in s.series for i in se.instances] for s in again.studies] == [
        [i.path for se in s.series for i in se.instances] for s in found.studies
    ]


def test_volume_sorted_by_position_not_instance_number() -> None:
    ct5n = _series_with(discover_studies(_dicomdirtests() / "98892001"), "CT5N")
    vol = load_volume(ct5n)
    assert vol.shape == (5, ct5n.rows, ct5n.columns) and vol.values.dtype == np.float32
    # independent reference: sort by IPP · (row × col), modality values by hand
    dss = [pydicom.dcmread(i.path) for i in ct5n.instances]
    normal = np.cross(
        np.array(dss[0].ImageOrientationPatient[:3], float),
        np.array(dss[0].ImageOrientationPatient[3:], float),
    )
    dss.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), normal)))
    assert [int(d.InstanceNumber) for d in dss] == [10, 9, 8, 7, 6]
    want = np.stack(
        [d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in dss]
    )
    np.testing.assert_allclose(vol.values, want, atol=1e-3)
    dz, dy, dx = vol.spacing
    assert dz == pytest.approx(2.5)
    assert (dy, dx) == pytest.approx(tuple(float(v) for v in dss[0].PixelSpacing))
    assert vol.geometry_known and vol.modality == "CT"


def _write_oblique_series(folder: Path, n: int = 6) -> tuple[list[float], float]:
    """n slices 8×8 of an oblique CT, files in shuffled order with shuffled InstanceNumbers."""
    rng = random.Random(7)
    theta = np.deg2rad(30)
    row = np.array([np.cos(theta), np.sin(theta), 0.0])
    col = np.array([0.0, 0.0, -1.0])
    normal = np.cross(row, col)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    numbers = list(range(1, n + 1))
    rng.shuffle(numbers)
    gap = 3.0
    for k in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"f{k}"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality = "CT"
        ds.InstanceNumber = numbers[k]
        ds.ImageOrientationPatient = [float(v) for v in (*row, *col)]
        ds.ImagePositionPatient = [
            float(v) for v in np.array([10.0, -20.0, 30.0]) + k * gap * normal
        ]
        ds.PixelSpacing = [0.5, 0.75]
        ds.ImagerPixelSpacing = [0.6, 0.9]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 8
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = 2, -1000
        ds.PixelData = np.full((8, 8), 100 * k, dtype=np.int16).tobytes()
        ds.save_as(folder / f"{rng.randrange(10**6):06d}_{k}", enforce_file_format=True)
    return [2.0 * 100 * k - 1000 for k in range(n)], gap


def test_synthetic_oblique_series_shuffled(tmp_path: Path) -> None:
    want, gap = _write_oblique_series(tmp_path)
    found = discover_studies(tmp_path)
    (series,) = found.studies[0].series
    vol = load_volume(series)
    assert [float(vol.values[i, 0, 0]) for i in range(len(want))] == want
    assert vol.spacing == pytest.approx((gap, 0.5, 0.75))
    assert vol.origin == pytest.approx((10.0, -20.0, 30.0))
    image = load_image(series)
    assert image.spacing == (0.5, 0.75) and image.imager_spacing == (0.6, 0.9)


def test_inconsistent_slice_sizes(tmp_path: Path) -> None:
    _write_oblique_series(tmp_path, n=3)
    victim = sorted(tmp_path.iterdir())[0]
    ds = pydicom.dcmread(victim)
    ds.Rows = ds.Columns = 4
    ds.PixelData = np.zeros((4, 4), np.int16).tobytes()
    ds.save_as(victim)
    (series,) = discover_studies(tmp_path).studies[0].series
    with pytest.raises(InconsistentSeriesError, match=r"1 of 3 slices differ in size") as err:
        load_volume(series)
    assert err.value.reason == "mixed_sizes"


def test_enhanced_multiframe_volume_uses_plane_positions() -> None:
    (series,) = discover_studies(_path("eCT_Supplemental.dcm")).studies[0].series
    vol = load_volume(series)
    ds = pydicom.dcmread(_path("eCT_Supplemental.dcm"))
    assert vol.shape == (2, 512, 512)
    assert vol.spacing == pytest.approx((10.0, 0.388672, 0.388672))
    # IOP (-1,0,0 / 0,1,0) → normal (0,0,-1): z = -149 comes first
    order = [1, 0]
    np.testing.assert_allclose(vol.values, ds.pixel_array[order].astype(float) - 1024.0)


def test_image2d_spacing_never_from_imager_spacing() -> None:
    (series,) = discover_studies(_path("RG1_UNCI.dcm")).studies[0].series
    image = load_image(series)
    assert image.spacing is None  # PixelSpacing is [0, 0] in this file: invalid
    assert image.inverted and image.values.dtype == np.float32
    np.testing.assert_allclose(image.display(), read_frames(series.instances[0].path)[0], atol=1e-6)


def test_no_pixels_and_missing_uid_are_counted(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "nopix")
    ds = pydicom.dcmread(_path("MR_small.dcm"))
    del ds.SeriesInstanceUID
    ds.save_as(tmp_path / "nouid")
    found = discover_studies(tmp_path)
    assert dict(found.skipped) == {"no_pixels": 1, "missing_uid": 1}
    assert found.files_seen == 2
    # an image header without pixels is a lost slice: its study is kept and reported, not lost
    (study,) = found.studies
    (series,) = study.series
    assert series.instances == () and series.unreadable_files == 1
    with pytest.raises(CorruptDicomError, match="no PixelData"):
        read_frames(tmp_path / "nopix")


def test_public_api_is_complete() -> None:
    import medfuse.runtime.dicom as api

    required = {
        "read_frames",
        "discover_studies",
        "Discovery",
        "load_volume",
        "Volume",
        "load_image",
        "Image2D",
        "apply_modality_lut",
        "apply_voi",
        "apply_polarity",
        "apply_window",
        "quiet_pydicom",
    }
    assert required <= set(api.__all__)
    assert all(hasattr(api, name) for name in api.__all__)
    public = {n for n in dir(api) if not n.startswith("_")} - {
        "consistency",
        "discovery",
        "frames",
        "geometry",
        "limits",
        "processing",
        "streaming",
        "study",
        "volume",
    }
    assert public == set(api.__all__)
