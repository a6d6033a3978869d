"""What a result rests on, on damage a clinic's tree really holds: each case is a synthetic
patient (real DICOM files) changed in one way, screened in one run; the record must say what
happened — a warning on an ``ok`` result, a refusal when the evidence is not the study's.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from helpers import fault_studies as fault
from helpers import screening_fixtures as fx
from medfuse.runtime.results import ResultRecord, read_results, study_key
from medfuse.runtime.screening import ScreeningSummary, screen_studies

CASES = (
    "clean",
    "empty_slice",
    "symlinked",
    "two_patients",
    "duplicate",
    "mixed_for",
    "constant",
    "ct_refused",
    "only_short_ct",
    "unknown_syntax",
    "junk_slope",
    "junk_window",
)
_PATIENT = "ZZPATIENT-SECOND-998877"


def _dicoms(folder: Path) -> list[Path]:
    """The DICOM files of a series folder (synthetic folders also hold notes and thumbnails)."""
    return [p for p in fault.files_of(folder) if fx.modality_of(p)]


def _rewrite(path: Path, **values: object) -> None:
    ds = pydicom.dcmread(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on the junk values planted on purpose
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        ds.save_as(path)


def _plant_junk(path: Path, keyword: str) -> None:
    """Text where a number belongs (pydicom will not write it: the bytes are replaced)."""
    _rewrite(path, **{keyword: "987.654"})
    data = path.read_bytes()
    assert data.count(b"987.654") == 1
    path.write_bytes(data.replace(b"987.654", b"ZZJUNK!"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    from medfuse.synthetic import generate_studies

    base = tmp_path_factory.mktemp("evidence")
    root = base / "in"
    generate_studies(root, 4 * len(CASES), seed=23)
    complete = [
        p
        for p in sorted(root.iterdir())
        if p.is_dir()
        and {"CT", "MR"} <= set(fault.series_dirs(p))
        and {"DX", "CR"} & set(fault.series_dirs(p))
    ]
    assert len(complete) >= len(CASES)
    for extra in complete[len(CASES) :]:
        shutil.rmtree(extra)
    for p in root.iterdir():
        if p.is_dir() and p not in complete:
            shutil.rmtree(p)
    cases = dict(zip(CASES, complete, strict=False))
    ct = {case: fault.series_dirs(folder)["CT"] for case, folder in cases.items()}

    (ct["empty_slice"] / "IM_EMPTY").write_bytes(b"")  # a slice the scanner never finished
    # the CT series lives outside the tree, linked in (a PACS export with shared storage)
    outside = base / "elsewhere" / "ct"
    shutil.move(str(ct["symlinked"]), outside)
    ct["symlinked"].symlink_to(outside, target_is_directory=True)
    (outside / "loop").symlink_to(outside, target_is_directory=True)  # must not walk forever
    _rewrite(_dicoms(ct["two_patients"])[4], PatientID=_PATIENT)
    first = _dicoms(ct["duplicate"])[0]
    shutil.copyfile(first, first.with_name(first.name + "_copy"))
    _rewrite(_dicoms(ct["mixed_for"])[3], FrameOfReferenceUID=f"2.25.{uuid.uuid4().int}")
    for path in _dicoms(ct["constant"]):
        _rewrite(path, RescaleSlope="0")
    for path in _dicoms(ct["ct_refused"])[3:]:
        path.unlink()
    for path in _dicoms(ct["unknown_syntax"]):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.99.1"  # private, body unchanged
        ds.save_as(path, enforce_file_format=True)
    for path in _dicoms(ct["junk_slope"]):
        _plant_junk(path, "RescaleSlope")
    series = fault.series_dirs(cases["junk_window"])
    xray = series.get("DX") or series["CR"]
    for path in _dicoms(xray):
        _plant_junk(path, "WindowCenter")
    fault.keep_only(cases["only_short_ct"], "CT")
    for path in _dicoms(ct["only_short_ct"])[3:]:
        path.unlink()
    return {case: (folder, fault.study_uid(folder)) for case, folder in cases.items()}


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secret") / "key.secret"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(fx.shipped_or_tiny_bundle(tmp_path_factory.mktemp("bundle")))


@pytest.fixture(scope="module")
def run(
    tree: dict[str, tuple[Path, str]],
    bundle: Path,
    secret: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ScreeningSummary, dict[str, ResultRecord], Path]]:
    out = tmp_path_factory.mktemp("run") / "r.jsonl"
    summary = screen_studies(tree["clean"][0].parent, out, bundle=bundle, key_secret_file=secret)
    key = fx.read_secret(secret)
    by_key = {r.study: r for r in read_results(out).records}
    yield summary, {c: by_key[study_key(uid, key)] for c, (_f, uid) in tree.items()}, out


def _codes(record: ResultRecord) -> list[str]:
    return [w.code for w in record.warnings]


def test_clean_study_has_no_warning(run) -> None:  # type: ignore[no-untyped-def]
    _s, records, _o = run
    assert records["clean"].ok and records["clean"].warnings == ()


def test_an_empty_file_beside_the_slices_is_warned_not_dropped_silently(run) -> None:  # type: ignore[no-untyped-def]
    summary, records, _o = run
    rec = records["empty_slice"]
    assert rec.ok and _codes(rec) == ["unreadable_nearby"]
    assert summary.skipped_files["not_dicom"] >= 1
    # side files the synthetic studies carry (notes.txt, thumbs.db) warn nobody
    assert not any("unreadable_nearby" in _codes(r) for c, r in records.items() if c == "clean")


def test_a_symlinked_series_folder_is_followed_once(run) -> None:  # type: ignore[no-untyped-def]
    _s, records, _o = run
    rec = records["symlinked"]
    assert rec.ok and rec.provenance is not None
    assert rec.provenance.inputs["ct"].present
    assert "duplicate_files" not in _codes(rec)  # the loop link did not read the files twice


def test_two_patients_under_one_study_uid_are_refused_without_naming_them(run) -> None:  # type: ignore[no-untyped-def]
    _s, records, out = run
    rec = records["two_patients"]
    assert rec.status == "error" and not rec.outputs
    assert {r.code for r in rec.reasons} == {"mixed_patient"}
    assert _PATIENT not in out.read_text()


def test_a_copied_slice_is_left_out_and_warned(run) -> None:  # type: ignore[no-untyped-def]
    _s, records, _o = run
    rec = records["duplicate"]
    assert rec.ok and "duplicate_files" in _codes(rec)
    (warning,) = [w for w in rec.warnings if w.code == "duplicate_files"]
    assert warning.count == 1 and warning.input == "ct"


def test_a_series_with_two_frames_of_reference_is_warned(run) -> None:  # type: ignore[no-untyped-def]
    _s, records, _o = run
    assert "mixed_frame_of_reference" in _codes(records["mixed_for"])


def test_a_series_with_no_information_is_warned(run) -> None:  # type: ignore[no-untyped-def]
    _s, records, _o = run
    rec = records["constant"]
    assert rec.ok and "constant_values" in _codes(rec)


def test_an_input_refused_for_its_content_is_warned_on_an_ok_result(run) -> None:  # type: ignore[no-untyped-def]
    _s, records, _o = run
    rec = records["ct_refused"]
    assert rec.ok and rec.provenance is not None
    assert not rec.provenance.inputs["ct"].present
    (warning,) = [w for w in rec.warnings if w.code == "input_refused"]
    assert warning.input == "ct" and "too_few" not in warning.detail  # words, not codes
    assert "needs at least 8" in warning.detail


def test_no_usable_input_marks_no_input_present(run) -> None:  # type: ignore[no-untyped-def]
    _s, records, _o = run
    rec = records["only_short_ct"]
    assert rec.status == "no_usable_input" and not rec.outputs
    assert rec.provenance is not None
    assert not any(u.present for u in rec.provenance.inputs.values())


def test_a_socket_in_the_tree_is_not_a_regular_file(tmp_path: Path) -> None:
    from medfuse.runtime.dicom import discover_studies
    from medfuse.synthetic import generate_studies

    root = tmp_path / "in"
    generate_studies(root, 1, seed=4)
    sock = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    os.chdir(root)  # a short relative name: socket paths are limited to ~100 bytes
    try:
        sock.bind("s.dcm")
    finally:
        os.chdir(cwd)
    try:
        found = discover_studies(root)
    finally:
        sock.close()
    assert found.skipped.get("not_regular") == 1 and "unreadable" not in found.skipped


def test_non_finite_model_outputs_are_refused(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from medfuse.synthetic import generate_studies

    bundle = fx.tiny_reference_bundle(tmp_path / "b", nan_bias=True)
    generate_studies(tmp_path / "in", 1, seed=5)
    out = tmp_path / "r.jsonl"
    summary = screen_studies(
        tmp_path / "in", out, bundle=bundle, key_secret_file=tmp_path / "k.secret"
    )
    assert summary.by_status == {"error": 1}
    (line,) = out.read_text().splitlines()
    record = json.loads(line)
    assert record["status"] == "error" and not record.get("outputs")
    assert record["error"]["type"] == "NonFiniteOutputError"


@pytest.mark.parametrize(
    ("case", "name", "reason"),
    [
        ("unknown_syntax", "ct", "undecodable"),
        ("junk_slope", "ct", "unreadable"),
        ("junk_window", "xr", "unreadable"),
    ],
)
def test_header_faults_refuse_the_input_alike_in_scan_and_run(  # type: ignore[no-untyped-def]
    run,
    tree: dict[str, tuple[Path, str]],
    bundle: Path,
    secret: Path,
    case: str,
    name: str,
    reason: str,
) -> None:
    from medfuse.runtime.scan import scan_studies

    _s, records, out = run
    rec = records[case]
    assert rec.ok and rec.provenance is not None
    assert rec.provenance.inputs[name].reason == reason
    assert [w.code for w in rec.warnings] == ["input_unreadable"]
    scanned = {
        s.study: s
        for s in scan_studies(
            tree["clean"][0].parent, bundle=bundle, key_secret_file=secret
        ).studies
    }
    assert scanned[rec.study or ""].provenance.inputs[name].reason == reason
    assert "ZZJUNK" not in out.read_text()


def test_predict_keeps_the_read_fault_behind_a_refusal(tmp_path: Path) -> None:
    from medfuse.errors import CorruptDicomError, NoUsableInputError
    from medfuse.runtime.session import Session
    from medfuse.synthetic import generate_studies

    generate_studies(tmp_path / "src", 1, seed=6)
    fx.make_error_study(tmp_path / "src")
    bundle = fx.shipped_or_tiny_bundle(tmp_path / "b")
    with Session(bundle) as session, pytest.raises(NoUsableInputError) as info:
        session.predict(tmp_path / "src" / "e0e0e0e0")
    assert isinstance(info.value.fault, CorruptDicomError)
