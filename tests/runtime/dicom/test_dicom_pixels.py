"""read_frames and the processing steps against the independent reference (dicom_reference.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from dicom_reference import modality, pipeline, stored_values
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from medfuse.bundle.spec import Window
from medfuse.errors import UnsupportedDicomError
from medfuse.runtime.dicom import (
    apply_modality_lut,
    apply_polarity,
    apply_voi,
    apply_window,
    read_frames,
    voi_transforms,
)

ATOL = 2e-5  # float32 arithmetic vs the float64 reference

# file, what it covers
REFERENCE_FILES = [
    ("CT_small.dcm", "CT, signed 16-bit, rescale, no window → min-max"),
    ("693_UNCI.dcm", "CT, signed, BitsStored 14 < 16, window"),
    ("693_UNCR.dcm", "CT, uncompressed twin of the J2K file"),
    ("693_J2KR.dcm", "JPEG 2000 lossless (openjpeg)"),
    ("MR_small.dcm", "MR, signed, window"),
    ("MR_small_bigendian.dcm", "Explicit VR Big Endian"),
    ("MR_small_RLE.dcm", "RLE lossless"),
    ("MR2_UNCI.dcm", "MR, 12 of 16 bits, non-integer slope"),
    ("MR2_J2KR.dcm", "MR, JPEG 2000 lossless"),
    ("eCT_Supplemental.dcm", "enhanced CT: rescale and window in functional groups"),
    ("emri_small.dcm", "enhanced MR, 10 frames, no VOI → min-max per frame"),
    ("RG3_UNCI.dcm", "CR MONOCHROME1, 10 of 16 bits"),
    ("RG1_UNCI.dcm", "CR MONOCHROME1, 15 of 16 bits"),
    ("mlut_18.dcm", "Modality LUT Sequence"),
    ("vlut_04.dcm", "VOI LUT Sequence"),
    ("image_dfl.dcm", "Deflated Explicit VR Little Endian"),
    ("JPEG2000.dcm", "JPEG 2000 lossy NM"),
    ("MR-SIEMENS-DICOM-WithOverlays.dcm", "two windows"),
]


def _path(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not available")
    return str(path)


@pytest.mark.parametrize(("name", "_what"), REFERENCE_FILES, ids=[f for f, _ in REFERENCE_FILES])
def test_read_frames_matches_reference(name: str, _what: str) -> None:
    path = _path(name)
    got = read_frames(path)
    want = pipeline(pydicom.dcmread(path))
    assert got.dtype == np.float32
    assert got.shape == want.shape
    assert got.flags.c_contiguous and got.flags.writeable
    assert float(got.min()) >= 0.0 and float(got.max()) <= 1.0
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_second_window_is_selectable() -> None:
    path = _path("MR-SIEMENS-DICOM-WithOverlays.dcm")
    ds = pydicom.dcmread(path)
    first, second = read_frames(path, voi_index=0), read_frames(path, voi_index=1)
    np.testing.assert_allclose(second, pipeline(ds, voi_index=1), atol=ATOL, rtol=0)
    assert not np.allclose(first, second)
    with pytest.raises(UnsupportedDicomError, match=r"has 2 \(2 window"):
        read_frames(path, voi_index=2)


def test_voi_index_out_of_range_names_the_count() -> None:
    with pytest.raises(UnsupportedDicomError, match=r"VOI number 1 .* has 1 \(1 window"):
        read_frames(_path("693_UNCI.dcm"), voi_index=1)


def test_enhanced_ct_gives_hounsfield_units_through_functional_groups() -> None:
    ds = pydicom.dcmread(_path("eCT_Supplemental.dcm"))
    hu = apply_modality_lut(ds.pixel_array, ds)
    raw = ds.pixel_array.astype(np.float64)
    assert "RescaleIntercept" not in ds  # only in SharedFunctionalGroupsSequence
    np.testing.assert_allclose(hu, raw - 1024.0, atol=0)
    assert float(hu.min()) == -1024.0
    # the file's window (49/102) comes from the FrameVOILUT functional group
    assert voi_transforms(ds, 0)[0].center == 49.0


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_voi_lut_functions(tmp_path: Path, function: str) -> None:
    ds = pydicom.dcmread(_path("693_UNCI.dcm"))
    ds.VOILUTFunction = function
    ds.WindowCenter, ds.WindowWidth = 40, 400
    out = tmp_path / "w.dcm"
    ds.save_as(out)
    got = read_frames(out)
    np.testing.assert_allclose(got, pipeline(pydicom.dcmread(out)), atol=ATOL, rtol=0)
    # apply_window with the same fixed window agrees with the file's window
    hu = apply_modality_lut(ds.pixel_array, ds)
    fixed = apply_window(hu, Window(40, 400, function))  # type: ignore[arg-type]
    np.testing.assert_allclose(fixed, got[0], atol=ATOL, rtol=0)


def test_presentation_lut_shape_inverse_flips_monochrome2(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_path("MR_small.dcm"))
    plain = read_frames(_path("MR_small.dcm"))
    ds.PresentationLUTShape = "INVERSE"
    out = tmp_path / "inv.dcm"
    ds.save_as(out)
    np.testing.assert_allclose(read_frames(out), 1.0 - plain, atol=1e-6, rtol=0)


def test_identity_shape_overrides_monochrome1(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_path("RG3_UNCI.dcm"))
    ds.PresentationLUTShape = "IDENTITY"
    out = tmp_path / "id.dcm"
    ds.save_as(out)
    np.testing.assert_allclose(read_frames(out), pipeline(pydicom.dcmread(out)), atol=ATOL)
    assert apply_polarity(np.zeros((2, 2)), ds).max() == 0.0


def test_constant_frame_without_voi_is_zeros(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    arr = np.full((ds.Rows, ds.Columns), 123, dtype=np.int16)
    ds.PixelData = arr.tobytes()
    out = tmp_path / "flat.dcm"
    ds.save_as(out)
    got = read_frames(out)
    assert got.shape == (1, 128, 128) and not np.isnan(got).any() and got.max() == 0.0


def test_steps_are_no_ops_without_their_attributes() -> None:
    ds = pydicom.dcmread(_path("MR_small.dcm"))  # no rescale
    raw = ds.pixel_array
    np.testing.assert_array_equal(apply_modality_lut(raw, ds), raw.astype(np.float32))
    del ds.WindowCenter, ds.WindowWidth
    np.testing.assert_array_equal(apply_voi(raw, ds), raw.astype(np.float32))
    np.testing.assert_array_equal(apply_polarity(raw, ds), raw.astype(np.float32))
    assert apply_modality_lut(raw, ds) is not raw  # input left untouched


def test_processing_steps_compose_to_read_frames() -> None:
    path = _path("RG3_UNCI.dcm")
    ds = pydicom.dcmread(path)
    y = apply_polarity(apply_voi(apply_modality_lut(ds.pixel_array, ds), ds), ds)
    np.testing.assert_allclose(y, read_frames(path)[0], atol=1e-6)
    np.testing.assert_allclose(
        apply_modality_lut(ds.pixel_array, ds), modality(ds, stored_values(ds)[0], 0), atol=1e-3
    )


def test_jpeg_baseline_grayscale(tmp_path: Path) -> None:
    """8-bit JPEG baseline (through pydicom's plugins) vs OpenCV's own JPEG decoder."""
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    img = (np.add.outer(np.arange(128), np.arange(128)) % 256).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([jpg.tobytes()])
    ds["PixelData"].VR = "OB"
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    out = tmp_path / "jpeg.dcm"
    ds.save_as(out, enforce_file_format=True)
    try:
        got = read_frames(out)
    except UnsupportedDicomError as exc:  # no JPEG plugin installed here
        assert "JPEG Baseline" in str(exc) and "install" in str(exc)
        return
    ref = cv2.imdecode(jpg, cv2.IMREAD_GRAYSCALE).astype(np.float64)
    want = (ref - ref.min()) / (ref.max() - ref.min())
    np.testing.assert_allclose(got[0], want, atol=3 / 255)  # JPEG decoders differ by a few levels


def test_jpeg_lossless_decodes_or_names_the_package() -> None:
    path = _path("JPEG-LL.dcm")
    try:
        got = read_frames(path)
    except UnsupportedDicomError as exc:
        msg = str(exc)
        assert "JPEG Lossless" in msg and "pip install" in msg
        return
    np.testing.assert_allclose(got, pipeline(pydicom.dcmread(path)), atol=ATOL)
