"""screen_studies: discovery → keys → resume filter → session → durable records → summary."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from helpers import screening_fixtures as fx
from medfuse.errors import BundleError, DicomError, UsageError
from medfuse.runtime.results import read_results, redact
from medfuse.runtime.screening import ScreeningSummary, screen_studies

N_PATIENTS = 4


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(fx.shipped_or_tiny_bundle(tmp_path_factory.mktemp("bundle")))


@pytest.fixture(scope="session")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four synthetic patients, one study with a truncated file, one random-bytes file."""
    from medfuse.synthetic import generate_studies

    root = tmp_path_factory.mktemp("studies") / "in"
    generate_studies(root, N_PATIENTS, seed=3)
    fx.make_error_study(root)
    (root / "garbage.dcm").write_bytes(bytes(range(256)) * 8)
    return root


@pytest.fixture(scope="session")
def secret_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secret") / "study-key.secret"


@pytest.fixture(scope="module")
def first_run(
    studies: Path, bundle: Path, secret_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ScreeningSummary, Path]]:
    out = tmp_path_factory.mktemp("run") / "results.jsonl"
    summary = screen_studies(
        studies, out, bundle=bundle, csv_path=out.with_suffix(".csv"), key_secret_file=secret_file
    )
    yield summary, out


def test_every_study_is_recorded_once_under_its_hmac_key(
    first_run: tuple[ScreeningSummary, Path], studies: Path, secret_file: Path
) -> None:
    _summary, out = first_run
    secret = fx.read_secret(secret_file)
    expected = {fx.expected_key(uid, secret) for uid in fx.study_uids(studies)}
    keys = [r.study for r in read_results(out).records]
    assert len(keys) == len(expected) == N_PATIENTS + 1
    assert set(keys) == expected


def test_ok_records_carry_probabilities_severity_modalities_timing_model(
    first_run: tuple[ScreeningSummary, Path], studies: Path, secret_file: Path
) -> None:
    _summary, out = first_run
    secret = fx.read_secret(secret_file)
    modalities: dict[str, set[str]] = {}
    for path in studies.rglob("*"):
        mod = fx.modality_of(path) if path.is_file() else None
        if mod:
            uid = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
            modalities.setdefault(fx.expected_key(uid, secret), set()).add(mod)
    ok = [r for r in read_results(out).records if r.ok]
    assert len(ok) == N_PATIENTS
    for rec in ok:
        diag = rec.outputs["diagnosis"]
        probs = {k: float(v or 0.0) for k, v in diag.probabilities.items()}
        assert list(probs) == ["normal", "cyst", "tumor", "calcification"]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert diag.top == max(probs, key=probs.__getitem__)
        assert diag.probability == pytest.approx(probs[diag.top])
        assert isinstance(rec.outputs["severity"].value, float)
        assert set(rec.modalities_used) == modalities[rec.study or ""]
        assert rec.provenance is not None and rec.provenance.rule_met
        used = [u for u in rec.provenance.inputs.values() if u.present]
        assert {u.modality for u in used} == modalities[rec.study or ""]
        assert all(rec.provenance.note(u.series or 0).used_by for u in used)
        assert {"read", "preprocess", "inference", "total"} <= set(rec.timing_ms)
        assert rec.model.name and rec.model.version and rec.model.variant and rec.model.backend


def test_a_failing_study_is_an_error_record_and_the_run_goes_on(
    first_run: tuple[ScreeningSummary, Path],
) -> None:
    summary, out = first_run
    errors = [r for r in read_results(out).records if r.status == "error"]
    assert len(errors) == 1
    assert errors[0].error is not None and errors[0].error.type == "PixelDataLengthError"
    assert "xr" in errors[0].error.message and not errors[0].outputs
    assert [(r.input, r.code) for r in errors[0].reasons if r.code != "no_series"] == [
        ("xr", "pixel_length")
    ]
    assert summary.by_status == {"ok": N_PATIENTS, "error": 1}
    assert summary.errors_by_type == {"PixelDataLengthError": 1}
    assert summary.reasons["xr: pixel_length"] == 1


def test_summary_counts_classes_skipped_files_and_throughput(
    first_run: tuple[ScreeningSummary, Path],
) -> None:
    summary, _out = first_run
    assert sum(summary.by_class.values()) == N_PATIENTS
    assert summary.skipped_files.get("not_dicom", 0) >= 1  # garbage.dcm, labels.csv, notes
    assert summary.screened == N_PATIENTS + 1 and summary.already_done == 0
    assert summary.studies_per_s > 0
    assert set(summary.timing_ms_mean) == {"read", "preprocess", "inference"}
    json.dumps(summary.to_dict())


def test_csv_mirrors_the_jsonl(first_run: tuple[ScreeningSummary, Path]) -> None:
    import csv

    _summary, out = first_run
    with out.with_suffix(".csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    records = read_results(out).records
    assert [r["study"] for r in rows] == [r.study for r in records]
    for row, rec in zip(rows, records, strict=True):
        assert row["status"] == rec.status
        if rec.ok:
            assert row["top_class"] == rec.top_class
            # In the unit the spec gives (mL for the reference model), else the model value.
            if rec.severity_unit == "mL":
                assert "severity" not in row
                assert float(row["severity_ml"]) == pytest.approx(rec.severity_in_unit, rel=1e-5)
            else:
                assert float(row["severity"]) == pytest.approx(rec.severity, rel=1e-5)
            assert row["inputs"] and not row["reasons"]
        else:
            assert row["error_type"] == rec.error_type and row["reasons"]


def test_resume_skips_recorded_studies_and_drops_a_torn_line(
    first_run: tuple[ScreeningSummary, Path],
    studies: Path,
    bundle: Path,
    secret_file: Path,
    tmp_path: Path,
) -> None:
    _summary, full = first_run
    lines = full.read_text().splitlines(keepends=True)
    out = tmp_path / "partial.jsonl"
    out.write_text("".join(lines[:2]) + lines[2][:25])  # two records and a torn third
    summary = screen_studies(studies, out, bundle=bundle, resume=True, key_secret_file=secret_file)
    keys = [r.study for r in read_results(out).records]
    assert sorted(keys) == sorted(r.study for r in read_results(full).records)
    assert summary.already_done == 2 and summary.screened == len(lines) - 2
    assert summary.torn_bytes_dropped == 25
    assert all(json.loads(line) for line in out.read_text().splitlines())


def test_resume_of_a_complete_file_screens_nothing(
    first_run: tuple[ScreeningSummary, Path],
    studies: Path,
    bundle: Path,
    secret_file: Path,
    tmp_path: Path,
) -> None:
    _summary, full = first_run
    out = tmp_path / "copy.jsonl"
    out.write_bytes(full.read_bytes())
    summary = screen_studies(studies, out, bundle=bundle, resume=True, key_secret_file=secret_file)
    assert summary.screened == 0 and summary.total == N_PATIENTS + 1
    assert out.read_bytes() == full.read_bytes()


def test_non_empty_output_without_resume_is_a_usage_error(
    first_run: tuple[ScreeningSummary, Path], studies: Path, bundle: Path, secret_file: Path
) -> None:
    _summary, out = first_run
    with pytest.raises(UsageError, match="--resume"):
        screen_studies(studies, out, bundle=bundle, key_secret_file=secret_file)


def test_a_folder_without_dicom_is_a_dicom_error(tmp_path: Path, bundle: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("no images here")
    with pytest.raises(DicomError, match="no DICOM image study found"):
        screen_studies(
            tmp_path / "in", tmp_path / "r.jsonl", bundle=bundle, key_secret_file=tmp_path / "s"
        )
    assert not (tmp_path / "r.jsonl").exists()


def test_a_bad_bundle_fails_before_any_result_is_written(
    studies: Path, secret_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "broken.medfuse").mkdir()
    with pytest.raises(BundleError):
        screen_studies(
            studies,
            tmp_path / "r.jsonl",
            bundle=tmp_path / "broken.medfuse",
            key_secret_file=secret_file,
        )
    assert not (tmp_path / "r.jsonl").exists()


def test_missing_studies_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="studies folder"):
        screen_studies(tmp_path / "absent", tmp_path / "r.jsonl", key_secret_file=tmp_path / "s")


def test_redact_removes_uids_and_paths_of_the_study(studies: Path) -> None:
    from medfuse.runtime.dicom import discover_studies

    study = discover_studies(studies).studies[0]
    inst = study.series[0].instances[0]
    message = f"bad file {inst.path} ({inst.path.relative_to(studies)}) of {study.uid} / {study.series[0].uid}"
    cleaned = redact(message, study=study, root=studies)
    for needle in (str(inst.path), inst.path.name, study.uid, study.series[0].uid, str(studies)):
        assert needle not in cleaned


def test_a_run_opens_no_network_socket(
    studies: Path, bundle: Path, secret_file: Path, tmp_path: Path
) -> None:
    code = textwrap.dedent(
        f"""
        import json, socket
        calls = []
        def refuse(what):
            def f(*args, **kwargs):
                calls.append(what)
                raise OSError("network access attempted during a screening run")
            return f
        socket.socket.__init__ = refuse("socket")
        socket.socket.connect = refuse("connect")
        socket.create_connection = refuse("create_connection")
        from medfuse.runtime.screening import screen_studies
        s = screen_studies({str(studies)!r}, {str(tmp_path / "r.jsonl")!r}, bundle={str(bundle)!r},
                           key_secret_file={str(secret_file)!r})
        print(json.dumps({{"calls": calls, "by_status": dict(s.by_status)}}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["calls"] == []
    assert report["by_status"] == {"ok": N_PATIENTS, "error": 1}


def test_csv_and_jsonl_must_differ(studies: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with pytest.raises(UsageError, match="same file"):
        screen_studies(studies, out, csv_path=out, key_secret_file=tmp_path / "s")
