"""Bad input gets a typed medfuse error, never a library traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medfuse.errors import (
    CorruptDicomError,
    DicomError,
    NotDicomError,
    PixelDataLengthError,
    UnsupportedDicomError,
)
from medfuse.runtime.dicom import read_frames


def _path(name: str) -> str:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not available")
    return str(path)


def test_random_bytes_named_dcm(tmp_path: Path) -> None:
    p = tmp_path / "image.dcm"
    p.write_bytes(os.urandom(4096))
    with pytest.raises(NotDicomError, match="not a DICOM file"):
        read_frames(p)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.dcm"
    p.touch()
    with pytest.raises(NotDicomError, match="empty"):
        read_frames(p)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotDicomError, match="cannot open"):
        read_frames(tmp_path / "nope.dcm")


def test_dicomdir() -> None:
    with pytest.raises(NotDicomError, match="DICOMDIR"):
        read_frames(_path("dicomdirtests/DICOMDIR"))


@pytest.mark.parametrize("name", ["rtplan.dcm", "test-SR.dcm"])
def test_non_image_objects(name: str) -> None:
    with pytest.raises(UnsupportedDicomError, match="not an image"):
        read_frames(_path(name))


def test_colour_is_refused() -> None:
    with pytest.raises(UnsupportedDicomError, match=r"not a grayscale image.*RGB"):
        read_frames(_path("SC_rgb.dcm"))


def test_truncated_dataset_file() -> None:
    with pytest.raises(CorruptDicomError, match="truncated"):
        read_frames(_path("emri_small_jpeg_2k_lossless_too_short.dcm"))


def test_truncated_pixel_data_is_caught_before_decoding(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    ds.PixelData = ds.PixelData[:1000]
    p = tmp_path / "short.dcm"
    ds.save_as(p)
    with pytest.raises(PixelDataLengthError, match=r"truncated: 1000 bytes, .* gives 32768"):
        read_frames(p)


def test_file_cut_in_the_middle(tmp_path: Path) -> None:
    data = Path(_path("MR_small.dcm")).read_bytes()
    p = tmp_path / "cut.dcm"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDicomError):
        read_frames(p)


def test_missing_transfer_syntax(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    del ds.file_meta.TransferSyntaxUID
    p = tmp_path / "nots.dcm"
    ds.save_as(p, implicit_vr=False, little_endian=True)
    with pytest.raises(DicomError):
        read_frames(p)


def test_missing_required_attribute(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_path("CT_small.dcm"))
    del ds.BitsAllocated
    p = tmp_path / "nobits.dcm"
    ds.save_as(p)
    with pytest.raises(CorruptDicomError, match="BitsAllocated is missing"):
        read_frames(p)


def test_invalid_vr_value() -> None:
    with pytest.raises(CorruptDicomError, match="NumberOfFrames is not an integer"):
        read_frames(_path("badVR.dcm"))


def test_invalid_window_value(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_path("MR_small.dcm"))
    ds.WindowCenter = "98765"
    p = tmp_path / "badwc.dcm"
    ds.save_as(p)
    data = p.read_bytes()
    assert data.count(b"98765") == 1
    p.write_bytes(data.replace(b"98765", b"ab#cd"))  # an invalid DS, as some writers produce
    with pytest.raises(CorruptDicomError, match="WindowCenter"):
        read_frames(p)


def test_invalid_window_width(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_path("MR_small.dcm"))
    ds.WindowWidth = 0.5
    p = tmp_path / "narrow.dcm"
    ds.save_as(p)
    with pytest.raises(CorruptDicomError, match=r"LINEAR window width 0\.5 is invalid"):
        read_frames(p)


def test_no_decoder_names_transfer_syntax_and_package() -> None:
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import JPEGLosslessSV1

    if get_decoder(JPEGLosslessSV1).is_available:
        pytest.skip("a JPEG lossless decoder is installed here")
    with pytest.raises(UnsupportedDicomError) as info:
        read_frames(_path("JPEG-LL.dcm"))
    msg = str(info.value)
    assert "JPEG Lossless, Non-Hierarchical, First-Order Prediction" in msg
    assert "pylibjpeg-libjpeg" in msg and "python-gdcm" in msg


def test_12_bit_jpeg_extended_with_only_pillow_is_a_missing_decoder() -> None:
    """pydicom's JPEG-lossy.dcm is JPEG Extended with BitsStored 12: Pillow cannot read it, and
    that is a decoder to install, not a damaged file."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import JPEGExtended12Bit

    from medfuse.errors import MissingDecoderError

    plugins = set(get_decoder(JPEGExtended12Bit).available_plugins)
    if not plugins or not plugins <= {"pillow"}:
        pytest.skip(f"decoders here: {sorted(plugins) or 'none'} (the case needs Pillow alone)")
    with pytest.raises(MissingDecoderError) as info:
        read_frames(_path("JPEG-lossy.dcm"))
    msg = str(info.value)
    assert "12-bit" in msg and "pylibjpeg-libjpeg" in msg and "python-gdcm" in msg
    assert "corrupt" not in msg and "truncated" not in msg


def test_rle_decoder_panic_becomes_corrupt_error(tmp_path: Path) -> None:
    """pylibjpeg-rle panics (a pyo3 PanicException, a BaseException) on a bad run length."""
    data = bytearray(Path(_path("MR_small_RLE.dcm")).read_bytes())
    ds = pydicom.dcmread(_path("MR_small_RLE.dcm"))
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    start = bytes(data).find(frame[:64])
    data[start + 64] = 0x81  # first RLE op of segment 1: a replicate run past the end
    p = tmp_path / "rle.dcm"
    p.write_bytes(bytes(data))
    with pytest.raises(CorruptDicomError, match="could not be decoded"):
        read_frames(p)


def test_12_bit_jpeg_extended_is_undecodable_from_the_header(tmp_path: Path) -> None:
    """The same judgement from the header alone (what `medfuse scan` sees)."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import JPEGExtended12Bit

    from medfuse.models.specs import model_spec
    from medfuse.runtime.dicom import discover_studies
    from medfuse.runtime.preprocess import plan_study

    plugins = set(get_decoder(JPEGExtended12Bit).available_plugins)
    if not plugins or not plugins <= {"pillow"}:
        pytest.skip(f"decoders here: {sorted(plugins) or 'none'} (the case needs Pillow alone)")
    ds = pydicom.dcmread(_path("JPEG-lossy.dcm"))
    ds.Modality = "CR"  # a radiograph: the reference model's X-ray input takes one image
    ds.save_as(tmp_path / "xr.dcm")
    (study,) = discover_studies(tmp_path).studies
    assert study.series[0].instances[0].bits_stored == 12
    provenance = plan_study(study, model_spec("reference")).provenance()
    assert provenance.series[0].reason == "undecodable"
    assert "12-bit" in provenance.series[0].detail
