"""Screening real scanner studies nobody here wrote: pydicom's ``dicomdirtests`` tree (real CT,
MR and CR studies) and single files of pydicom-data, copied into one folder.

Every image study gets a record, none is ``ok`` without a series behind it, and the reasons name
the real cause: the 4-slice CT against ``min_frames`` 8, the orthogonal localizers and rotating
projections as ``mixed_orientation``, padded pixel data as ``pixel_length``.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from helpers import screening_fixtures as fx
from medfuse.runtime.dicom import discover_studies
from medfuse.runtime.results import ResultRecord, read_results
from medfuse.runtime.scan import scan_studies
from medfuse.runtime.screening import ScreeningSummary, screen_studies

SINGLE_FILES = (
    "RG3_UNCI.dcm",  # CR, MONOCHROME1: the X-ray input
    "emri_small.dcm",  # MR, 10 frames in one file: the MR input
    "CT_small.dcm",  # one CT slice: too few for the CT input
    "MR_small_padded.dcm",  # 128 bytes more pixel data than 64×64×16 bits
    "SC_rgb.dcm",  # a colour secondary capture (Modality OT)
)


def _testdata(name: str) -> Path:
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not available (pydicom-data)")
    return Path(path)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    top = tmp_path_factory.mktemp("real") / "in"
    shutil.copytree(_testdata("dicomdirtests/DICOMDIR").parent, top / "dicomdirtests")
    (top / "single").mkdir()
    for name in SINGLE_FILES:
        shutil.copy(_testdata(name), top / "single" / name)
    return top


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secret") / "key.secret"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(fx.shipped_or_tiny_bundle(tmp_path_factory.mktemp("bundle")))


@pytest.fixture(scope="module")
def screened(
    root: Path, secret: Path, bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ScreeningSummary, dict[str, ResultRecord]]]:
    out = tmp_path_factory.mktemp("run") / "r.jsonl"
    summary = screen_studies(root, out, bundle=bundle, key_secret_file=secret)
    yield summary, {r.study or "": r for r in read_results(out).records}


def _record_of(file: Path, secret: Path, records: dict[str, ResultRecord]) -> ResultRecord:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uid = str(pydicom.dcmread(file, stop_before_pixels=True).StudyInstanceUID)
    return records[fx.expected_key(uid, fx.read_secret(secret))]


def _first_file(folder: Path) -> Path:
    return next(p for p in sorted(folder.iterdir()) if p.is_file())


def test_every_image_study_has_one_record_and_none_is_ok_without_a_series(  # type: ignore[no-untyped-def]
    screened, root: Path
) -> None:
    summary, records = screened
    assert len(records) == len(discover_studies(root).studies) == summary.total
    ok = [r for r in records.values() if r.ok]
    assert ok, "the CR and the multi-frame MR studies are usable"
    for record in records.values():
        assert record.provenance is not None
        if record.ok:
            assert record.provenance.rule_met and record.provenance.present
            assert all(
                record.provenance.note(use.series or 0).used_by
                for use in record.provenance.inputs.values()
                if use.present
            )
        else:
            assert not record.outputs and record.reasons


def test_the_four_slice_ct_is_refused_for_too_few_frames(  # type: ignore[no-untyped-def]
    screened, root: Path, secret: Path
) -> None:
    _summary, records = screened
    rec = _record_of(_first_file(root / "dicomdirtests" / "77654033" / "CT2"), secret, records)
    assert rec.status == "no_usable_input"
    ct = next(r for r in rec.reasons if r.input == "ct")
    assert ct.code == "too_few_frames"
    assert ct.detail.endswith("found 4 frame(s); input ct needs at least 8")


@pytest.mark.parametrize(
    ("folder", "series_frames"),
    [("98892001/CT2N", 2), ("98892003/MR700", 7)],
    ids=["orthogonal-localizers", "rotating-projections"],
)
def test_localizers_and_rotating_projections_are_refused_for_their_orientation(  # type: ignore[no-untyped-def]
    screened, root: Path, secret: Path, folder: str, series_frames: int
) -> None:
    _summary, records = screened
    rec = _record_of(_first_file(root / "dicomdirtests" / folder), secret, records)
    assert not rec.ok and rec.provenance is not None
    note = next(n for n in rec.provenance.series if n.frames == series_frames)
    assert note.reason == "mixed_orientation"
    assert "are not parallel to the first" in note.detail


def test_single_files_get_the_reason_of_what_they_are(screened, root: Path, secret: Path) -> None:  # type: ignore[no-untyped-def]
    _summary, records = screened
    single = root / "single"

    def status(name: str) -> tuple[str, list[tuple[str, str]]]:
        rec = _record_of(single / name, secret, records)
        return rec.status, [(r.input, r.code) for r in rec.reasons if r.code != "no_series"]

    assert status("RG3_UNCI.dcm") == ("ok", [])
    assert status("emri_small.dcm") == ("ok", [])
    assert status("CT_small.dcm") == ("no_usable_input", [("ct", "too_few_frames")])
    assert status("MR_small_padded.dcm") == ("error", [("mr", "pixel_length")])
    rgb = _record_of(single / "SC_rgb.dcm", secret, records)
    assert rgb.status == "no_usable_input" and rgb.provenance is not None
    assert [n.reason for n in rgb.provenance.series] == ["wrong_modality"]


def test_scan_says_what_run_did(  # type: ignore[no-untyped-def]
    screened, root: Path, secret: Path, bundle: Path
) -> None:
    summary, records = screened
    scanned = scan_studies(root, bundle=bundle, key_secret_file=secret)
    assert len(scanned.studies) == len(records)
    for scan in scanned.studies:
        record = records[scan.study]
        assert scan.status == ("usable" if record.ok else record.status)
        assert record.provenance is not None
        assert {n: u.series for n, u in scan.provenance.inputs.items()} == {
            n: u.series for n, u in record.provenance.inputs.items()
        }
    assert summary.reasons["ct: too_few_frames"] >= 2
