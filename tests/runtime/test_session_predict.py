"""Session over DICOM studies: predict, predict_many order / partial batch / failures, presence.

Studies are pydicom's real CT and MR test files, copied with fresh UIDs so that several
studies hold a CT and/or an MR series. Expected values come from running the same
preprocessing into separate arrays and the model's math in numpy (not through the Session).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from helpers.onnx_bundles import fusion_bundle, fusion_model, fusion_reference, fusion_spec
from medfuse.bundle import Bundle
from medfuse.errors import NoUsableInputError, StudyError
from medfuse.runtime.dicom import Study, discover_studies
from medfuse.runtime.preprocess import preprocess_study
from medfuse.runtime.results import (
    ModelInfo,
    ResultRecord,
    StudyFailure,
    StudyNotUsable,
    StudyResult,
)
from medfuse.runtime.session import Session

SENTINEL = "SENTINEL^PHI"


# Study layouts: which modalities each study holds. "MR" alone lacks the required CT.
LAYOUT = [("CT", "MR"), ("CT",), ("MR",), ("CT", "MR"), ("CT",)]


def _write(src: str, folder: Path, study_uid: str, name: str) -> None:
    ds = dcmread(src)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = SENTINEL
    ds.PatientID = "ZZ-ONE-PATIENT"  # files from different test patients made one study
    folder.mkdir(parents=True, exist_ok=True)
    ds.save_as(folder / name)


@pytest.fixture(scope="module")
def studies_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    files = {"CT": get_testdata_file("CT_small.dcm"), "MR": get_testdata_file("MR_small.dcm")}
    for i, mods in enumerate(LAYOUT):
        uid = generate_uid()
        for mod in mods:
            _write(str(files[mod]), root / f"s{i}", uid, f"{mod}.dcm")
    return root


@pytest.fixture(scope="module")
def studies(studies_root: Path) -> list[Study]:
    """The studies in LAYOUT order (one folder per study)."""
    out = []
    for i in range(len(LAYOUT)):
        found = discover_studies(studies_root / f"s{i}").studies
        assert len(found) == 1
        out.append(found[0])
    return out


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    made: Bundle = fusion_bundle(tmp_path_factory.mktemp("pred"))
    return made


def _expected(study: Study) -> dict[str, Any]:
    """Preprocess into fresh arrays and run the model's math in numpy."""
    spec = fusion_spec()
    feeds = {i.name: np.zeros(i.batch_shape(1), np.float32) for i in spec.inputs}
    prepared = preprocess_study(study, spec, {k: v[0] for k, v in feeds.items()})
    ref = fusion_reference(feeds)
    logits = ref["diagnosis"][0]
    e = np.exp(logits - logits.max())
    return {
        "probs": e / e.sum(),
        "severity": ref["severity"][0],
        "prepared": prepared,
        "feeds": feeds,
    }


def _check(result: StudyResult, study: Study) -> None:
    want = _expected(study)
    diag = result.outputs["diagnosis"]
    np.testing.assert_allclose(diag.values, want["probs"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sum(diag.values), 1.0, rtol=1e-9)
    assert diag.labels == ("normal", "benign", "malignant")
    assert diag.top_label == diag.labels[int(np.argmax(want["probs"]))]
    np.testing.assert_allclose(
        result.outputs["severity"].values, want["severity"], rtol=1e-5, atol=1e-5
    )
    assert result.present == want["prepared"].present
    assert result.missing == want["prepared"].missing


def test_predict_one_study_folder(bundle: Bundle, studies_root: Path, studies: list[Study]) -> None:
    with Session(bundle) as session:
        result = session.predict(studies_root / "s0")
    assert isinstance(result, StudyResult)
    _check(result, studies[0])
    assert result.present == ("ct", "mr") and result.missing == ()
    assert dict(result.modalities_used) == {"ct": "CT", "mr": "MR"}
    assert set(result.timing_ms) >= {"read", "preprocess", "inference"}


def test_missing_optional_modality_gets_presence_zero(bundle: Bundle, studies: list[Study]) -> None:
    with Session(bundle) as session:
        result = session.predict(studies[1])
    _check(result, studies[1])
    assert result.present == ("ct",) and result.missing == ("mr",)
    feeds = _expected(studies[1])["feeds"]
    np.testing.assert_array_equal(feeds["presence"], [[1.0, 0.0]])
    assert not feeds["mr"].any()
    record = ResultRecord.from_outcome("k", result, ModelInfo(name="m"))
    assert record.to_json()["modalities"] == {"used": ["CT"], "missing": ["MR"]}


def test_missing_required_modality_raises_in_predict(bundle: Bundle, studies: list[Study]) -> None:
    with Session(bundle) as session, pytest.raises(NoUsableInputError) as info:
        session.predict(studies[2])
    assert isinstance(info.value, StudyError)
    assert info.value.provenance.inputs["ct"].reason == "no_series"


@pytest.mark.parametrize("workers", [0, 2])
def test_predict_many_keeps_order_partial_batch_and_failures(
    bundle: Bundle, studies: list[Study], workers: int
) -> None:
    secret = b"k" * 32
    with Session(bundle, key_secret=secret) as session:
        outcomes = list(session.predict_many(studies, batch_size=2, workers=workers))
    assert [o.index for o in outcomes] == list(range(len(LAYOUT)))
    assert [o.key for o in outcomes] == [s.key(secret) for s in studies]
    for outcome, study in zip(outcomes, studies, strict=True):
        if outcome.index == 2:
            assert isinstance(outcome, StudyNotUsable)
            assert outcome.status == "no_usable_input" and outcome.error is None
            assert not outcome.provenance.rule_met
            assert outcome.provenance.inputs["ct"].reason == "no_series"
        else:
            assert isinstance(outcome, StudyResult)
            _check(outcome, study)
    sizes = [o.batch_size for o in outcomes if isinstance(o, StudyResult)]
    assert sizes == [2, 2, 2, 1]  # study 2's batch-mate still ran; the last batch is partial


def test_outcomes_serialise_without_phi(
    bundle: Bundle, studies: list[Study], studies_root: Path
) -> None:
    with Session(bundle) as session:
        text = json.dumps(
            [
                ResultRecord.from_outcome(o.key, o, session.info.model_info()).to_json()
                for o in session.predict_many(studies, batch_size=4)
            ]
        )
    assert SENTINEL.split("^")[0] not in text
    assert str(studies_root) not in text
    for study in studies:
        assert study.uid not in text
        for series in study.series:
            assert series.uid not in text


def test_unexpected_errors_keep_paths_out_of_messages(bundle: Bundle, studies: list[Study]) -> None:
    def broken(study: Study, spec: Any, out: Any) -> Any:
        raise FileNotFoundError(str(study.series[0].instances[0].path))

    with Session(bundle, preprocess=broken) as session:
        outcomes = list(session.predict_many(studies[:2], batch_size=2, workers=1))
    for o in outcomes:
        assert isinstance(o, StudyFailure)
        assert o.error_type == "InternalError" and "FileNotFoundError" in o.message
        assert "/" not in o.message
        assert isinstance(o.exception, FileNotFoundError)


def test_stopping_early_shuts_the_pipeline_down(bundle: Bundle, studies: list[Study]) -> None:
    with Session(bundle) as session:
        it = session.predict_many(studies * 3, batch_size=2, workers=2)
        first = next(it)
        it.close()  # type: ignore[attr-defined]
        assert first.index == 0
        # the session still works afterwards
        assert isinstance(session.predict(studies[0]), StudyResult)


def test_fixed_batch_model_pads_the_last_batch(tmp_path: Path, studies: list[Study]) -> None:
    from medfuse.bundle import Provenance, VariantSource, write_bundle

    model = fusion_model(tmp_path / "b2.onnx", batch=2)
    b = write_bundle(
        tmp_path / "b2.medfuse",
        spec=fusion_spec(),
        variants={"fp32": VariantSource(model)},
        provenance=Provenance(),
    )
    with Session(b) as session:
        outcomes = list(session.predict_many([studies[0], studies[1], studies[3]], batch_size=2))
    assert [o.ok for o in outcomes] == [True, True, True]
    for o, s in zip(outcomes, [studies[0], studies[1], studies[3]], strict=True):
        assert isinstance(o, StudyResult)
        _check(o, s)
