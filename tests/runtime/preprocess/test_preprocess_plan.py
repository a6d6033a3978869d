"""plan_study: the header verdict on every series, each input's candidates, the presence rule.

Series are built in memory (headers only, as discovery records them); the read-time fallback
at the end uses real files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from medfuse.bundle.spec import (
    InputSpec,
    IntensityRecipe,
    ModelSpec,
    OutputSpec,
    PreprocessRecipe,
    SeriesSelection,
)
from medfuse.errors import ManifestError, NoUsableInputError
from medfuse.runtime.dicom import Instance, Series, Study
from medfuse.runtime.preprocess import plan_study, preprocess_study
from medfuse.runtime.results import study_status

NATIVE = "1.2.840.10008.1.2.1"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"  # needs pylibjpeg-libjpeg or gdcm: not installed
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def _series(
    uid: str,
    modality: str,
    n: int,
    *,
    size: int = 64,
    orientation: tuple[float, ...] | None = AXIAL,
    spacing: float = 2.0,
    syntax: str = NATIVE,
    photometric: str = "MONOCHROME2",
    **changes: object,
) -> Series:
    instances = tuple(
        Instance(
            path=Path(f"/nowhere/{uid}/{i}"),
            sop_instance_uid=f"{uid}.{i}",
            rows=size,
            columns=size,
            instance_number=i + 1,
            position=(0.0, 0.0, spacing * i),
            orientation=orientation,
            photometric_interpretation=photometric,
            modality=modality,
            transfer_syntax=syntax,
        )
        for i in range(n)
    )
    return dataclasses.replace(
        Series(uid=uid, modality=modality, instances=instances, number=int(uid.split(".")[-1])),
        **changes,  # type: ignore[arg-type]
    )


def _spec(*, min_present: int = 1, ct_required: bool = False) -> ModelSpec:
    ct = PreprocessRecipe(
        SeriesSelection(("CT",), min_frames=8), "volume", (8, 16, 16), IntensityRecipe("minmax")
    )
    xr = PreprocessRecipe(
        SeriesSelection(("CR", "DX"), rule="largest_area"),
        "image",
        (16, 16),
        IntensityRecipe("voi"),
    )
    return ModelSpec(
        name="t",
        version="1",
        inputs=(
            InputSpec("ct", ("batch", 1, 8, 16, 16), required=ct_required, preprocessing=ct),
            InputSpec("xr", ("batch", 1, 16, 16), preprocessing=xr),
            InputSpec("presence", ("batch", 2), role="presence"),
        ),
        outputs=(OutputSpec("logits", "diagnosis", ("batch", 2)),),
        min_present=min_present,
    )


def _plan(*series: Series, **spec: object):  # type: ignore[no-untyped-def]
    return plan_study(Study(uid="1.2", series=series), _spec(**spec))  # type: ignore[arg-type]


def _localizer_pair(uid: str) -> Series:
    """Two CT slices at right angles (an orthogonal localizer)."""
    pair = _series(uid, "CT", 2)
    tilted = dataclasses.replace(pair.instances[1], orientation=CORONAL)
    return dataclasses.replace(pair, instances=(pair.instances[0], tilted))


def test_each_series_gets_its_reason_and_the_best_candidate_is_chosen() -> None:
    plan = _plan(
        _series("1.2.1", "CT", 40),
        _series("1.2.2", "CT", 60),  # most frames: chosen
        _series("1.2.3", "CT", 4),  # too few
        _series("1.2.4", "SR", 1),
        _localizer_pair("1.2.5"),
    )
    assert plan.candidates == {"ct": (2, 1), "xr": ()}
    prov = plan.provenance()
    reasons = {note.n: note.reason for note in prov.series}
    assert reasons == {
        1: "not_chosen",
        2: None,
        3: "too_few_frames",
        4: "wrong_modality",
        5: "mixed_orientation",
    }
    assert prov.note(1).detail == "input ct took series 2 by rule most_frames"
    assert prov.note(4).detail == "Modality SR; the model takes CR, CT, DX"
    assert prov.inputs["ct"].series == 2 and prov.inputs["ct"].frames == 60
    assert prov.inputs["xr"].reason == "no_series"
    assert prov.rule_met and study_status(prov) == "ok"


@pytest.mark.parametrize(
    ("series", "reason", "status"),
    [
        (_series("1.2.1", "CT", 20, spacing=0.0), "duplicate_positions", "no_usable_input"),
        (
            Series(
                uid="1.2.1",
                modality="CT",
                instances=(
                    *_series("1.2.1", "CT", 10).instances,
                    _series("1.2.9", "CT", 1, size=32).instances[0],
                ),
            ),
            "mixed_sizes",
            "no_usable_input",
        ),
        (_series("1.2.1", "CT", 20, photometric="RGB"), "unsupported", "no_usable_input"),
        (_series("1.2.1", "CT", 20, syntax=JPEG_LOSSLESS), "undecodable", "error"),
        (_series("1.2.1", "CT", 20, unreadable_files=1), "unreadable", "error"),
        (_series("1.2.1", "CT", 0, unreadable_files=3), "unreadable", "error"),
    ],
    ids=["duplicates", "sizes", "colour", "no-decoder", "one-file-unreadable", "all-unreadable"],
)
def test_header_faults_and_content_reasons(series: Series, reason: str, status: str) -> None:
    prov = _plan(series).provenance()
    assert prov.inputs["ct"].reason == reason
    assert study_status(prov) == status  # faults make an error, content a no_usable_input


def test_files_that_disagree_on_modality_are_a_fault_of_the_series() -> None:
    base = _series("1.2.1", "CT", 20)
    mixed = dataclasses.replace(
        base,
        instances=(*base.instances[:-1], dataclasses.replace(base.instances[-1], modality="MR")),
    )
    prov = _plan(mixed).provenance()
    assert prov.note(1).reason == "mixed_modality"
    assert "2 different Modality values (CT, MR)" in prov.note(1).detail
    assert study_status(prov) == "error"


def test_a_junk_modality_is_named_unknown_never_quoted() -> None:
    prov = _plan(_series("1.2.1", "DOE^JANE", 20)).provenance()
    assert prov.note(1).modality == "unknown"
    assert "DOE" not in prov.note(1).detail and "DOE" not in str(prov.to_json())


def test_the_presence_rule_required_and_min_present() -> None:
    ct, xr = _series("1.2.1", "CT", 20), _series("1.2.2", "DX", 1, size=200)
    assert _plan(ct, xr, min_present=2).usable
    assert not _plan(ct, min_present=2).usable
    assert _plan(xr).usable and not _plan(xr, ct_required=True).usable
    with pytest.raises(ManifestError, match="min_present 0"):
        _spec(min_present=0)
    with pytest.raises(ManifestError, match="min_present 3"):
        _spec(min_present=3)


def test_a_candidate_that_fails_when_read_gives_way_to_the_next(tmp_path: Path) -> None:
    """Two real CT series; the better one loses a file after discovery: the other is used,
    and the result says so."""
    from helpers.fault_studies import files_of, series_dirs
    from medfuse.runtime.dicom import discover_studies
    from medfuse.synthetic import generate_studies

    generate_studies(tmp_path / "a", 1, seed=3)
    generate_studies(tmp_path / "b", 1, seed=4)
    (patient_a,) = [p for p in (tmp_path / "a").iterdir() if p.is_dir()]
    (patient_b,) = [p for p in (tmp_path / "b").iterdir() if p.is_dir()]
    (study,) = discover_studies(patient_a).studies
    (other,) = discover_studies(patient_b).studies
    ct = next(s for s in other.series if s.modality == "CT")
    study = dataclasses.replace(study, series=(*study.series, ct))
    spec = _spec()
    plan = plan_study(study, spec)
    best = plan.series[plan.candidates["ct"][0] - 1]
    files_of(series_dirs(patient_a if best is not ct else patient_b)["CT"])[3].unlink()
    bufs = {i.name: np.zeros(i.sample_shape(), np.float32) for i in spec.inputs}
    prov = preprocess_study(study, spec, bufs, plan=plan).provenance
    fallback = plan.candidates["ct"][1]
    assert prov.inputs["ct"].series == fallback and prov.rule_met
    failed = prov.note(plan.candidates["ct"][0])
    assert failed.reason == "unreadable" and "NotDicomError" in failed.detail
    assert [(w.code, w.input) for w in prov.warnings] == [("series_unreadable", "ct")]
    assert bufs["presence"][0] == 1.0


def test_when_every_candidate_fails_the_study_is_an_error_with_the_fault(tmp_path: Path) -> None:
    from helpers.fault_studies import files_of, keep_only, series_dirs
    from medfuse.runtime.dicom import discover_studies
    from medfuse.synthetic import generate_studies

    generate_studies(tmp_path, 1, seed=3)
    (patient,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    keep_only(patient, "CT")
    (study,) = discover_studies(patient).studies
    files_of(series_dirs(patient)["CT"])[0].unlink()
    spec = _spec()
    bufs = {i.name: np.full(i.sample_shape(), np.nan, np.float32) for i in spec.inputs}
    with pytest.raises(NoUsableInputError) as info:
        preprocess_study(study, spec, bufs)
    assert study_status(info.value.provenance) == "error"
    assert info.value.fault is not None
    assert all(not np.any(b) for b in bufs.values())  # nothing half-written is left
