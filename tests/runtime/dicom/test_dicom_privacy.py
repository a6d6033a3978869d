"""Sentinel PHI in files and folder names never reaches logs, warnings, stdout/stderr or errors."""

from __future__ import annotations

import logging
import shutil
import traceback
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medfuse.errors import DicomError
from medfuse.runtime.dicom import discover_studies, load_image, load_volume, read_frames

FOLDER = "DOE^JANE_MRN12345"
SENTINELS = [
    "DOE^JANE",
    "DOE",
    "JANE",
    "MRN12345",
    "19800101",
    "20240229",
    "SENTINEL-HOSPITAL",
    "SENTINEL-STUDY-DESC",
    "ZQ42",
]


def _make_folder(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / FOLDER / "ZQ42_scans"
    root.mkdir(parents=True)
    uids: list[str] = []
    for k, name in enumerate(["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm"]):
        src = get_testdata_file(name)
        if src is None:
            pytest.skip(f"{name} is not available")
        ds = pydicom.dcmread(src)
        ds.PatientName = "DOE^JANE"
        ds.PatientID = "MRN12345"
        ds.PatientBirthDate = "19800101"
        ds.StudyDate = ds.SeriesDate = "20240229"
        ds.InstitutionName = "SENTINEL-HOSPITAL"
        ds.StudyDescription = "SENTINEL-STUDY-DESC"
        ds.SeriesNumber = "987654321012"  # replaced below by an invalid IS carrying a sentinel
        ds.InstanceNumber = "887654321012"
        uids += [str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)]
        path = root / f"DOE^JANE_{k}.dcm"
        ds.save_as(path)
        data = path.read_bytes()
        data = data.replace(b"987654321012", b"MRN12345 ZQ4").replace(
            b"887654321012", b"DOE^JANE 001"
        )
        path.write_bytes(data)
    corrupt = root / "DOE^JANE_broken.dcm"
    corrupt.write_bytes((root / "DOE^JANE_0.dcm").read_bytes()[:-5000])
    return root, uids


def _assert_clean(text: str, root: Path, uids: list[str]) -> None:
    for s in [*SENTINELS, FOLDER, str(root), *uids]:
        assert s not in text, f"{s!r} leaked"


def test_no_phi_anywhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    root, uids = _make_folder(tmp_path)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="pydicom")
    caplog.set_level(logging.DEBUG, logger="medfuse")
    pydicom.config.debug(True)  # pydicom then logs every element it reads
    texts: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = discover_studies(tmp_path)
            series = [se for st in found.studies for se in st.series]
            assert len(series) == 2  # CT; the two MR files share a series
            for se in series:
                for inst in se.instances:
                    try:
                        read_frames(inst.path)
                    except DicomError as exc:
                        texts.append("".join(traceback.format_exception(exc)))
                try:
                    texts.append(repr(load_volume(se)))
                except DicomError as exc:
                    texts.append("".join(traceback.format_exception(exc)))
                texts.append(repr(load_image(se)))
            texts += [repr(found), repr(found.studies)]
    finally:
        pydicom.config.debug(False)
    errors = [t for t in texts if "Error" in t]
    assert any("truncated" in t for t in errors), "the broken file should have failed"
    out, err = capfd.readouterr()
    texts += [out, err]
    texts += [str(w.message) for w in caught]
    for rec in caplog.records:
        texts.append(rec.getMessage())
        if rec.exc_info and rec.exc_info[1] is not None:
            texts.append("".join(traceback.format_exception(rec.exc_info[1])))
    texts.append(caplog.text)
    _assert_clean("\n".join(texts), root, uids)


def test_corrupt_file_error_has_no_path(tmp_path: Path) -> None:
    root, uids = _make_folder(tmp_path)
    bad = root / "DOE^JANE_broken.dcm"
    with pytest.raises(DicomError) as info:
        read_frames(bad)
    _assert_clean("".join(traceback.format_exception(info.value)), root, uids)
    junk = root / "DOE^JANE_junk.dcm"
    junk.write_bytes(b"MRN12345" * 100)
    with pytest.raises(DicomError) as info:
        read_frames(junk)
    _assert_clean("".join(traceback.format_exception(info.value)), root, uids)
    shutil.rmtree(root)
