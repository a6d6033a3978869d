"""End to end: DICOM files on disk → discovery → selection → input buffers.

Series are written with pydicom into ``tmp_path`` (CT slices with RescaleIntercept, shuffled
file order and reversed InstanceNumbers, so only position sorting gives the right order); the
CR case uses pydicom-data's RG3_UNCI. Expected tensors are computed in the tests from the
standard's formulas and analytic resampling coordinates.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from medfuse.bundle.spec import (
    InputSpec,
    IntensityRecipe,
    ModelSpec,
    OutputSpec,
    PreprocessRecipe,
    SeriesSelection,
    Window,
)
from medfuse.errors import NoUsableInputError, PreprocessingError, StudyError
from medfuse.runtime.dicom import Study, discover_studies
from medfuse.runtime.preprocess import (
    PreparedStudy,
    preprocess_series,
    preprocess_study,
    select_series,
)

SENTINEL = "DOE^SENTINEL^PHI"
CT_SHAPE = (12, 24, 20)  # slices, rows, cols
MR_SHAPE = (4, 16, 16)


def _ct_hu(i: np.ndarray | float, y: np.ndarray | float, x: np.ndarray | float) -> np.ndarray:
    """HU at sorted slice i, row y, column x (linear, so resampling is analytic)."""
    return np.asarray(40.0 * np.asarray(i) - 300.0 + 3.0 * np.asarray(y) - 2.0 * np.asarray(x))


def _write_slice(
    path: Path,
    *,
    study_uid: str,
    series_uid: str,
    modality: str,
    pixels: np.ndarray,
    z: float,
    number: int,
    intercept: float | None,
) -> None:
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = series_uid
    ds.PatientName = SENTINEL
    ds.PatientID = SENTINEL
    ds.Modality = modality
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    if intercept is not None:
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = 1
    ds.PixelData = pixels.astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _write_study(root: Path, *, with_mr: bool = True, ct_slices: int = CT_SHAPE[0]) -> None:
    """A CT series (HU ramp) and optionally an MR series, one study, files in random order."""
    rng = random.Random(5)
    study_uid = generate_uid()
    ct_uid = generate_uid()
    folder = root / SENTINEL.replace("^", "_")  # PHI in a folder name, as PACS exports do
    folder.mkdir(parents=True)
    n, rows, cols = ct_slices, CT_SHAPE[1], CT_SHAPE[2]
    y, x = np.mgrid[0:rows, 0:cols]
    order = list(range(n))
    rng.shuffle(order)
    for k, i in enumerate(order):
        stored = np.rint(_ct_hu(i, y, x) + 1024.0)
        _write_slice(
            folder / f"f{k:03d}",
            study_uid=study_uid,
            series_uid=ct_uid,
            modality="CT",
            pixels=stored,
            z=-100.0 + 2.5 * i,
            number=n - i,  # reversed: sorting by InstanceNumber would flip the volume
            intercept=-1024.0,
        )
    if with_mr:
        mr_uid = generate_uid()
        d, r, c = MR_SHAPE
        for i in range(d):
            _write_slice(
                folder / f"m{i}.dcm",
                study_uid=study_uid,
                series_uid=mr_uid,
                modality="MR",
                pixels=np.full((r, c), 100 * (i + 1)),
                z=5.0 * i,
                number=i + 1,
                intercept=None,
            )


def _study(root: Path) -> Study:
    found = discover_studies(root)
    assert len(found.studies) == 1
    return found.studies[0]


def _linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR, output [0, 1]."""
    return np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)


def _ct_recipe() -> PreprocessRecipe:
    return PreprocessRecipe(
        selection=SeriesSelection(("CT",), min_frames=8),
        geometry="volume",
        size=(6, 12, 10),  # exactly 2x in every axis
        intensity=IntensityRecipe(
            "windows",
            windows=(Window(40.0, 400.0), Window(0.0, 1000.0, "LINEAR_EXACT")),
            mean=(0.1, 0.2),
            std=(0.5, 0.25),
        ),
        spacing=(5.0, 1.0, 1.0),
    )


def _ct_expected() -> np.ndarray:
    # 2x reduction, linear rule: output k samples the input at 2k + 0.5 on every axis
    k, j, i = (2.0 * np.arange(n) + 0.5 for n in (6, 12, 10))
    hu = _ct_hu(k[:, None, None], j[None, :, None], i[None, None, :])
    soft = (_linear(hu, 40.0, 400.0) - 0.1) / 0.5
    wide = (np.clip((hu - 0.0) / 1000.0 + 0.5, 0.0, 1.0) - 0.2) / 0.25
    return np.stack([soft, wide])


def _spec(*, ct_required: bool = True, mr_required: bool = False) -> ModelSpec:
    mr = PreprocessRecipe(
        selection=SeriesSelection(("MR",), min_frames=2),
        geometry="volume",
        size=(4, 8, 8),
        intensity=IntensityRecipe("minmax"),
    )
    cr = PreprocessRecipe(
        selection=SeriesSelection(("CR", "DX")),
        geometry="image",
        size=(16, 16),
        intensity=IntensityRecipe("voi"),
    )
    ct = _ct_recipe()
    return ModelSpec(
        name="t",
        version="1",
        inputs=(
            InputSpec("ct", ("batch", *ct.tensor_shape), required=ct_required, preprocessing=ct),
            InputSpec("mr", ("batch", *mr.tensor_shape), required=mr_required, preprocessing=mr),
            InputSpec("cr", ("batch", *cr.tensor_shape), preprocessing=cr),
            InputSpec("presence", ("batch", 3), role="presence"),
        ),
        outputs=(OutputSpec("logits", "diagnosis", ("batch", 2)),),
    )


def _buffers(spec: ModelSpec, batch: int = 2) -> dict[str, np.ndarray]:
    return {i.name: np.full(i.batch_shape(batch), np.nan, np.float32) for i in spec.inputs}


def test_ct_volume_into_a_buffer_view(tmp_path: Path) -> None:
    _write_study(tmp_path)
    study = _study(tmp_path)
    recipe = _ct_recipe()
    series = select_series(study, recipe.selection)
    assert series is not None and series.modality == "CT"
    batch = np.full((3, *recipe.tensor_shape), np.nan, dtype=np.float32)
    result = preprocess_series(series, recipe, batch[1])  # type: ignore[func-returns-value]
    assert result is None
    np.testing.assert_allclose(batch[1], _ct_expected(), atol=1e-4)
    assert np.isnan(batch[0]).all() and np.isnan(batch[2]).all()


def test_study_fills_presence_and_zeroes_missing_optional(tmp_path: Path) -> None:
    _write_study(tmp_path)
    spec = _spec()
    bufs = _buffers(spec)
    views = {name: buf[1] for name, buf in bufs.items()}
    prepared = preprocess_study(_study(tmp_path), spec, views)
    assert isinstance(prepared, PreparedStudy)
    assert prepared.present == ("ct", "mr") and prepared.missing == ("cr",)
    prov = prepared.provenance
    assert {n: (u.modality, u.frames) for n, u in prov.inputs.items() if u.present} == {
        "ct": ("CT", 12),
        "mr": ("MR", 4),
    }
    for name in ("ct", "mr"):
        note = prov.note(prov.inputs[name].series or 0)
        assert note.used_by == (name,) and note.modality == name.upper()
    assert prov.inputs["cr"].reason == "no_series" and prov.rule_met
    assert set(prepared.timing_ms) == {"read", "preprocess"}
    assert all(v >= 0 for v in prepared.timing_ms.values())
    np.testing.assert_array_equal(bufs["presence"][1], [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(bufs["cr"][1], 0.0)
    np.testing.assert_allclose(bufs["ct"][1], _ct_expected(), atol=1e-4)
    # MR slices are constant 100, 200, 300, 400 → minmax over the resampled volume
    np.testing.assert_allclose(bufs["mr"][1, 0, :, 3, 3], [0.0, 1 / 3, 2 / 3, 1.0], atol=1e-6)
    assert all(np.isnan(buf[0]).all() for buf in bufs.values())  # other sample untouched


def test_missing_required_modality_is_a_study_error(tmp_path: Path) -> None:
    _write_study(tmp_path, with_mr=False)
    spec = _spec(mr_required=True)
    bufs = _buffers(spec, batch=1)
    with pytest.raises(NoUsableInputError, match=r"including ct, mr.*mr: no_series") as info:
        preprocess_study(_study(tmp_path), spec, {n: b[0] for n, b in bufs.items()})
    assert isinstance(info.value, StudyError)
    provenance = info.value.provenance
    assert provenance.inputs["mr"].detail == "no MR series in the study (it holds CT)"
    ct = provenance.inputs["ct"]  # the CT could feed its input but was never read:
    assert not ct.present and ct.reason == "not_chosen"  # not marked as used
    assert "presence rule could not be met" in ct.detail
    assert not provenance.rule_met and info.value.fault is None
    assert not np.any(bufs["ct"]), "nothing is read before the rule is checked; views zeroed"


def test_series_below_min_frames_is_not_selected(tmp_path: Path) -> None:
    _write_study(tmp_path, with_mr=False, ct_slices=3)
    spec = _spec(ct_required=False)
    bufs = _buffers(spec, batch=1)
    with pytest.raises(NoUsableInputError) as info:
        preprocess_study(_study(tmp_path), spec, {n: b[0] for n, b in bufs.items()})
    ct = info.value.provenance.inputs["ct"]
    assert (ct.present, ct.reason) == (False, "too_few_frames")
    assert ct.detail == "series 1 (CT, 3 frame(s)): found 3 frame(s); input ct needs at least 8"
    np.testing.assert_array_equal(bufs["presence"][0], 0.0)
    assert not np.any(bufs["ct"])


def test_wrong_buffer_is_a_preprocessing_error(tmp_path: Path) -> None:
    _write_study(tmp_path)
    spec = _spec()
    bufs = {n: b[0] for n, b in _buffers(spec, batch=1).items()}
    bufs["ct"] = np.zeros((2, 6, 12, 11), dtype=np.float32)
    with pytest.raises(PreprocessingError, match="'ct'"):
        preprocess_study(_study(tmp_path), spec, bufs)
    del bufs["ct"]
    with pytest.raises(PreprocessingError, match="no buffer"):
        preprocess_study(_study(tmp_path), spec, bufs)


def test_voi_on_a_volume_recipe_is_rejected(tmp_path: Path) -> None:
    _write_study(tmp_path, with_mr=False)
    recipe = PreprocessRecipe(SeriesSelection(("CT",)), "volume", (2, 4, 4), IntensityRecipe("voi"))
    series = select_series(_study(tmp_path), recipe.selection)
    assert series is not None
    with pytest.raises(PreprocessingError, match="'voi'"):
        preprocess_series(series, recipe, np.empty((1, 2, 4, 4), np.float32))


def test_no_phi_in_logs_or_errors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_study(tmp_path, with_mr=False)
    study = _study(tmp_path)
    spec = _spec()
    bufs = {n: b[0] for n, b in _buffers(spec, batch=1).items()}
    caplog.set_level(logging.DEBUG)
    preprocess_study(study, spec, bufs)
    with pytest.raises(NoUsableInputError) as info:
        preprocess_study(study, _spec(mr_required=True), bufs)
    uids = {study.uid, *(s.uid for s in study.series)}
    text = caplog.text + str(info.value)
    for secret in (SENTINEL, SENTINEL.replace("^", "_"), str(tmp_path), *uids):
        assert secret not in text


def _cr_reference(path: str, size: int) -> np.ndarray:
    """RG3_UNCI by hand: raw → LINEAR window from the header → MONOCHROME1 flip → block mean."""
    ds = pydicom.dcmread(path)
    raw = ds.pixel_array.astype(np.float64)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    y = 1.0 - _linear(raw, c, w)
    f = ds.Rows // size
    return np.asarray(y.reshape(size, f, size, f).mean(axis=(1, 3)), dtype=np.float64)


def test_cr_voi_image_matches_hand_pipeline(tmp_path: Path) -> None:
    src = get_testdata_file("RG3_UNCI.dcm")
    assert isinstance(src, str)
    (tmp_path / "x").mkdir()
    shutil.copy(src, tmp_path / "x" / "image")
    study = _study(tmp_path)
    recipe = PreprocessRecipe(
        SeriesSelection(("DX", "CR")),
        "image",
        (220, 220),  # 1760 / 8: box average
        IntensityRecipe("voi", mean=(0.5,), std=(0.25,)),
    )
    series = select_series(study, recipe.selection)
    assert series is not None
    out = np.empty((1, 220, 220), dtype=np.float32)
    preprocess_series(series, recipe, out)
    expected = (_cr_reference(src, 220) - 0.5) / 0.25
    np.testing.assert_allclose(out[0], expected, atol=2e-4)


def test_mr_small_image_percentile(tmp_path: Path) -> None:
    src = get_testdata_file("MR_small.dcm")
    assert isinstance(src, str)
    shutil.copy(src, tmp_path / "mr")
    study = _study(tmp_path)
    recipe = PreprocessRecipe(
        SeriesSelection(("MR",)),
        "image",
        (32, 32),
        IntensityRecipe("percentile", percentiles=(1.0, 99.0)),
    )
    series = select_series(study, recipe.selection)
    assert series is not None
    out = np.empty((1, 32, 32), dtype=np.float32)
    preprocess_series(series, recipe, out)
    raw = pydicom.dcmread(src).pixel_array.astype(np.float64)  # no rescale in this file
    small = raw.reshape(32, 2, 32, 2).mean(axis=(1, 3))  # 2x linear == mean of 2x2
    lo, hi = np.percentile(small, (1.0, 99.0))
    np.testing.assert_allclose(out[0], np.clip((small - lo) / (hi - lo), 0, 1), atol=1e-5)


def test_far_off_spacing_is_a_warning_on_the_result(tmp_path: Path) -> None:
    _write_study(tmp_path, with_mr=False)
    base = _spec()
    ct = base.inputs[0]
    assert ct.preprocessing is not None
    off = dataclasses.replace(ct.preprocessing, spacing=(1.0, 1.0, 1.0))
    spec = dataclasses.replace(
        base, inputs=(dataclasses.replace(ct, preprocessing=off), *base.inputs[1:])
    )
    for model, warned in ((spec, True), (base, False)):  # base: 5 mm slices as it expects
        bufs = {n: b[0] for n, b in _buffers(model, batch=1).items()}
        warnings = preprocess_study(_study(tmp_path), model, bufs).provenance.warnings
        codes = [(w.code, w.input) for w in warnings]
        assert codes == ([("spacing_off", "ct")] if warned else [])
        if warned:
            assert "resampled to [5.0, 1.0, 1.0] mm" in warnings[0].detail
