"""The cohort on disk: valid DICOM read back by pydicom, labels apart and keyed, variety, layout."""

from __future__ import annotations

import csv
import hashlib
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError
from pydicom.pixels.processing import apply_modality_lut
from pydicom.uid import UID, RLELossless

from medfuse.errors import UsageError
from medfuse.runtime.results.keys import load_or_create_secret, study_key
from medfuse.synthetic import (
    DIAGNOSES,
    KEY_FILE,
    LABELS_CSV,
    MARKER,
    SynthSummary,
    generate_studies,
)

COHORT_SEED = 3  # this seed's 8 patients include MONOCHROME1, RLE, CR, DX and a missing modality
COHORT_PATIENTS = 8
NON_DICOM = {"notes.txt", "thumbs.db"}
COMMON = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "SeriesNumber", "InstanceNumber",
    "Manufacturer", "InstitutionName", "StudyDescription", "SeriesDescription",
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation",
]  # fmt: skip
PER_MODALITY = {
    "CT": ["ImageType", "FrameOfReferenceUID", "PositionReferenceIndicator", "ImagePositionPatient",
           "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "RescaleIntercept",
           "RescaleSlope", "KVP", "AcquisitionNumber", "PatientPosition", "WindowCenter", "WindowWidth"],
    "MR": ["ImageType", "FrameOfReferenceUID", "PositionReferenceIndicator", "ImagePositionPatient",
           "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "ScanningSequence",
           "SequenceVariant", "ScanOptions", "MRAcquisitionType", "RepetitionTime", "EchoTime",
           "EchoTrainLength", "PatientPosition"],
    "CR": ["PatientOrientation", "ViewPosition", "BodyPartExamined", "ImagerPixelSpacing"],
    "DX": ["ImageType", "PresentationIntentType", "PixelIntensityRelationship",
           "PixelIntensityRelationshipSign", "RescaleIntercept", "RescaleSlope", "RescaleType",
           "PresentationLUTShape", "LossyImageCompression", "BurnedInAnnotation", "ImageLaterality",
           "ImagerPixelSpacing", "PatientOrientation", "AnatomicRegionSequence",
           "AcquisitionContextSequence", "DetectorType"],
}  # fmt: skip


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    return out, generate_studies(out, COHORT_PATIENTS, seed=COHORT_SEED)


def _images(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.parent != root and p.name not in NON_DICOM
    )


def _headers(root: Path) -> list[tuple[Path, pydicom.Dataset]]:
    return [(p, pydicom.dcmread(p, stop_before_pixels=True)) for p in _images(root)]


def _labels(root: Path) -> list[dict[str, str]]:
    with (root / LABELS_CSV).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_image_file_reads_and_has_its_iod_attributes(
    cohort: tuple[Path, SynthSummary],
) -> None:
    root, summary = cohort
    headers = _headers(root)
    assert len(headers) == summary.files_written
    for _, ds in headers:
        missing = [k for k in [*COMMON, *PER_MODALITY[ds.Modality]] if k not in ds]
        assert not missing, (ds.Modality, missing)
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPClassUID):
            assert UID(uid).is_valid
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_pixel_arrays_decode_on_a_sample(cohort: tuple[Path, SynthSummary]) -> None:
    root, _ = cohort
    files = _images(root)
    for path in files[::7]:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
        assert arr.shape == (ds.Rows, ds.Columns)
        if ds.Modality == "CT":
            hu = apply_modality_lut(arr, ds)
            assert hu.min() >= -3100 and hu.max() <= 3100


def test_ct_slices_are_evenly_spaced_along_the_normal(cohort: tuple[Path, SynthSummary]) -> None:
    root, _ = cohort
    series: dict[str, list[pydicom.Dataset]] = {}
    for _, ds in _headers(root):
        if ds.Modality in {"CT", "MR"}:
            series.setdefault(ds.SeriesInstanceUID, []).append(ds)
    for items in series.values():
        iop = np.array(items[0].ImageOrientationPatient, dtype=float)
        normal = np.cross(iop[:3], iop[3:])
        assert np.isclose(np.linalg.norm(normal), 1.0, atol=1e-6)
        z = np.sort(
            [float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=float))) for d in items]
        )
        gaps = np.diff(z)
        assert np.allclose(gaps, gaps[0], atol=1e-3) and gaps[0] > 0
        spacing = float(items[0].get("SpacingBetweenSlices", items[0].SliceThickness))
        assert gaps[0] == pytest.approx(spacing, abs=1e-3)


def test_labels_are_keyed_by_hmac_of_study_uids(cohort: tuple[Path, SynthSummary]) -> None:
    root, _ = cohort
    secret = load_or_create_secret(root / KEY_FILE)
    uids = {ds.StudyInstanceUID for _, ds in _headers(root)}
    rows = _labels(root)
    assert len(rows) == COHORT_PATIENTS == len(uids)
    assert {r["study"] for r in rows} == {study_key(u, secret) for u in uids}
    text = (root / LABELS_CSV).read_text(encoding="utf-8")
    assert not any(u in text for u in uids)
    assert list(rows[0]) == ["study", "diagnosis", "severity", "modalities"]


def test_labels_match_the_images(cohort: tuple[Path, SynthSummary]) -> None:
    root, _ = cohort
    secret = load_or_create_secret(root / KEY_FILE)
    modalities: dict[str, set[str]] = {}
    for _, ds in _headers(root):
        xr = "XR" if ds.Modality in {"CR", "DX"} else ds.Modality
        modalities.setdefault(study_key(ds.StudyInstanceUID, secret), set()).add(xr)
    for row in _labels(root):
        assert set(row["modalities"].split("+")) == modalities[row["study"]]
        assert row["diagnosis"] in DIAGNOSES
        assert (float(row["severity"]) == 0.0) == (row["diagnosis"] == "normal")


def test_no_label_inside_the_dicom_files(cohort: tuple[Path, SynthSummary]) -> None:
    root, _ = cohort
    for path in _images(root)[::5]:
        data = path.read_bytes().lower()
        assert not any(word.encode() in data for word in ("cyst", "tumor", "calcification"))


def test_class_balance_and_summary_counts(cohort: tuple[Path, SynthSummary]) -> None:
    root, summary = cohort
    counts = Counter(r["diagnosis"] for r in _labels(root))
    assert counts == Counter(dict.fromkeys(DIAGNOSES, COHORT_PATIENTS // 4))
    assert summary.per_class == dict(counts)
    assert summary.per_modality["XR"] == summary.per_modality["CR"] + summary.per_modality["DX"]


def test_acquisition_variety_is_present(cohort: tuple[Path, SynthSummary]) -> None:
    root, _ = cohort
    seen: Counter[str] = Counter()
    for _, ds in _headers(root):
        seen[ds.Modality] += 1
        seen[ds.PhotometricInterpretation] += 1
        seen["RLE" if ds.file_meta.TransferSyntaxUID == RLELossless else "native"] += 1
        if ds.Modality in {"CR", "DX"} and "PixelSpacing" not in ds:
            seen["imager-spacing-only"] += 1
    for feature in (
        "CT",
        "MR",
        "CR",
        "DX",
        "MONOCHROME1",
        "MONOCHROME2",
        "RLE",
        "native",
        "imager-spacing-only",
    ):
        assert seen[feature] > 0, feature
    assert any(r["modalities"] != "CT+MR+XR" for r in _labels(root))
    assert any(p.name in NON_DICOM for p in root.rglob("*"))
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(next(p for p in root.rglob("*") if p.name in NON_DICOM))


def test_folders_have_no_phi_by_default(cohort: tuple[Path, SynthSummary]) -> None:
    root, _ = cohort
    for path, ds in _headers(root):
        rel = str(path.relative_to(root))
        assert str(ds.PatientID) not in rel and str(ds.PatientName).split("^")[0] not in rel


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_writes_identical_files(
    cohort: tuple[Path, SynthSummary], tmp_path: Path
) -> None:
    root, _ = cohort
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(root / KEY_FILE, again / KEY_FILE)  # the same secret gives the same keys
    generate_studies(again, COHORT_PATIENTS, seed=COHORT_SEED)
    assert _digest(again) == _digest(root)


def test_different_seed_writes_different_studies(
    cohort: tuple[Path, SynthSummary], tmp_path: Path
) -> None:
    root, _ = cohort
    other = tmp_path / "other"
    generate_studies(other, 2, seed=COHORT_SEED + 1)
    mine = {ds.StudyInstanceUID for _, ds in _headers(root)}
    theirs = {ds.StudyInstanceUID for _, ds in _headers(other)}
    assert not mine & theirs
    assert [r["severity"] for r in _labels(other)] != [r["severity"] for r in _labels(root)][:2]


def test_phi_folder_names_on_request(tmp_path: Path) -> None:
    out = tmp_path / "phi"
    generate_studies(out, 2, seed=1, phi_folder_names=True)
    for path, ds in _headers(out):
        top = path.relative_to(out).parts[0]
        assert top == f"{ds.PatientName}_{ds.PatientID}"


def test_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "thesis.docx").write_text("mine", encoding="utf-8")
    with pytest.raises(UsageError, match="not a previous"):
        generate_studies(tmp_path, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.docx"]


def test_rewrites_its_own_output_and_keeps_the_key(tmp_path: Path) -> None:
    out = tmp_path / "re"
    generate_studies(out, 2, seed=1)
    key = (out / KEY_FILE).read_bytes()
    summary = generate_studies(out, 1, seed=2)
    assert (out / KEY_FILE).read_bytes() == key
    assert len(_images(out)) == summary.files_written
    assert len(_labels(out)) == 1
    assert (out / MARKER).exists()


@pytest.mark.parametrize(("patients", "seed"), [(0, 0), (-3, 0), (2, -1)])
def test_bad_arguments_are_usage_errors(tmp_path: Path, patients: int, seed: int) -> None:
    with pytest.raises(UsageError):
        generate_studies(tmp_path / "x", patients, seed=seed)


def test_progress_is_reported_per_patient(tmp_path: Path) -> None:
    done: list[int] = []
    generate_studies(tmp_path / "p", 2, seed=5, progress=done.append)
    assert done == [1, 2]
