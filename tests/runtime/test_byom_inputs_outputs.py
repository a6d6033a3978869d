"""Spec features for brought models, on synthetic DICOM: channel replication, a scalar input
from PatientAge (never in the record), and a segmentation output summarised per class."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medfuse.export import (
    classification,
    ct_volume,
    export_bundle,
    load_spec,
    model_spec,
    radiograph,
    scalar,
)
from medfuse.runtime.dicom import discover_studies
from medfuse.runtime.preprocess import preprocess_study
from medfuse.runtime.preprocess.scalars import parse_age

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}")
    return subprocess.run(
        [sys.executable, "-m", "medfuse.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("byom") / "studies"
    proc = _cli("synth", "--patients", "6", "--out", str(out), "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    return out


def test_age_strings_parse_to_years() -> None:
    assert parse_age("045Y") == 45.0
    assert parse_age("006M") == pytest.approx(0.5)
    assert parse_age("014D") == pytest.approx(14 / 365.25)
    assert parse_age("45Y") is None and parse_age("045X") is None


def _spec():  # type: ignore[no-untyped-def]
    return model_spec(
        "age-ct",
        "1",
        inputs=[
            ct_volume("ct", size=(8, 16, 16)),
            scalar("age", "PatientAge", parse="age", offset=50, scale=20, default=60),
        ],
        outputs=[classification("diagnosis", ["a", "b"])],
    )


def _ct_study(root: Path):  # type: ignore[no-untyped-def]
    return next(
        s for s in discover_studies(root).studies if any(x.modality == "CT" for x in s.series)
    )


def test_scalar_input_reads_patient_age_and_normalises(studies: Path) -> None:
    spec = _spec()
    study = _ct_study(studies)
    first = study.series[0].instances[0].path
    age = parse_age(str(pydicom.dcmread(first, stop_before_pixels=True).PatientAge))
    assert age is not None
    out = {i.name: np.zeros(i.sample_shape(), np.float32) for i in spec.inputs}
    prepared = preprocess_study(study, spec, out)
    assert out["age"][0] == pytest.approx((age - 50) / 20, rel=1e-6)
    assert not [w for w in prepared.provenance.warnings if w.code == "scalar_default"]


def test_missing_age_takes_the_default_and_warns(studies: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "noage"
    shutil.copytree(studies, copy)
    for f in (p for p in copy.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(f)
        except pydicom.errors.InvalidDicomError:
            continue
        if "PatientAge" in ds:
            del ds.PatientAge
            ds.save_as(f)
    spec = _spec()
    out = {i.name: np.zeros(i.sample_shape(), np.float32) for i in spec.inputs}
    prepared = preprocess_study(_ct_study(copy), spec, out)
    assert out["age"][0] == pytest.approx((60 - 50) / 20)
    codes = [w.code for w in prepared.provenance.warnings]
    assert "scalar_default" in codes


def test_replicated_channels_are_copies(studies: Path) -> None:
    spec = model_spec(
        "rgb",
        "1",
        inputs=[radiograph("xray", size=(32, 32), replicate=3)],
        outputs=[classification("diagnosis", ["a", "b"])],
    )
    study = next(
        s
        for s in discover_studies(studies).studies
        if any(x.modality in ("CR", "DX") for x in s.series)
    )
    out = {"xray": np.full((3, 32, 32), np.nan, np.float32)}
    preprocess_study(study, spec, out)
    assert np.isfinite(out["xray"]).all() and out["xray"][0].std() > 0
    assert np.array_equal(out["xray"][0], out["xray"][1])
    assert np.array_equal(out["xray"][0], out["xray"][2])


def test_segmentation_run_reports_fractions_and_writes_masks_on_request(
    studies: Path, tmp_path: Path
) -> None:
    from helpers.byom_nets import tiny_segmenter

    spec = load_spec(ROOT / "docs" / "examples" / "ct-segmentation.json")
    bundle = export_bundle(tiny_segmenter(), spec, tmp_path / "seg.medfuse")
    results, masks = tmp_path / "results.jsonl", tmp_path / "masks"
    proc = _cli(
        "run",
        str(studies),
        "--bundle",
        str(bundle.path),
        "--out",
        str(results),
        "--masks",
        str(masks),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in results.read_text().splitlines()]
    ok = [r for r in records if r["status"] == "ok"]
    assert ok
    for r in ok:
        organs = r["outputs"]["organs"]
        assert organs["kind"] == "segmentation"
        assert sum(organs["fractions"].values()) == pytest.approx(1.0, abs=1e-5)
        assert set(organs["volumes_ml"]) == {"background", "organ"}
        assert organs["volumes_ml"]["organ"] > 0
        mask = np.load(masks / f"{r['study']}.organs.npy")
        assert mask.shape == (16, 32, 32) and mask.dtype == np.uint8
        assert mask.mean() == pytest.approx(organs["fractions"]["organ"], abs=1e-6)
    assert len(list(masks.glob("*.npy"))) == len(ok)


def test_a_masks_folder_that_cannot_be_written_is_refused_before_and_during_the_run(
    studies: Path, tmp_path: Path
) -> None:
    """``--masks`` naming a file is refused before discovery (no results file); a mask that
    cannot be written mid-run is a FileAccessError naming --masks, and the study it belongs to
    has no record (a record on file means its masks are too)."""
    from helpers.byom_nets import tiny_segmenter
    from medfuse.errors import FileAccessError
    from medfuse.runtime.results import load_or_create_secret, read_results
    from medfuse.runtime.screening import screen_studies

    spec = load_spec(ROOT / "docs" / "examples" / "ct-segmentation.json")
    bundle = export_bundle(tiny_segmenter(), spec, tmp_path / "seg.medfuse")
    results = tmp_path / "results.jsonl"
    taken = tmp_path / "a-file"
    taken.write_text("x")
    proc = _cli("run", str(studies), "--bundle", str(bundle.path), "--out", str(results),
                "--masks", str(taken))  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--masks" in proc.stderr and "Traceback" not in proc.stderr
    assert not results.exists()

    secret_file = tmp_path / "secret"
    secret = load_or_create_secret(secret_file)
    masks = tmp_path / "masks"
    for study in discover_studies(studies).studies:  # every mask path taken by a folder
        (masks / f"{study.key(secret)}.organs.npy").mkdir(parents=True)
    with pytest.raises(FileAccessError, match="--masks"):
        screen_studies(
            studies, results, bundle=bundle.path, key_secret_file=secret_file, masks_dir=masks
        )
    ok = [r for r in read_results(results).current if r.status == "ok"]
    assert ok == []


def test_segmentation_bundle_quantizes_and_validates(studies: Path, tmp_path: Path) -> None:
    from helpers.byom_nets import tiny_segmenter

    spec = load_spec(ROOT / "docs" / "examples" / "ct-segmentation.json")
    bundle = export_bundle(tiny_segmenter(), spec, tmp_path / "seg.medfuse")
    proc = _cli(
        "quantize",
        str(bundle.path),
        "--calib",
        str(studies),
        "--precision",
        "int8",
        "--target",
        "cpu",
        "--min-calib",
        "3",
        "--no-plots",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _cli("validate", str(bundle.path), "--backend", "onnxruntime", "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report.get("failures")
    assert {c["precision"] for c in report["checks"] if c["passed"]} == {"fp32", "int8-cpu"}
