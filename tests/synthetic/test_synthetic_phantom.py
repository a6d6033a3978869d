"""The phantom: lesions look as designed per class on CT and MR, labels and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medfuse.errors import UsageError
from medfuse.synthetic import DIAGNOSES, PatientPhantom, make_patient


def _patient(diagnosis: str, seed: int = 11) -> PatientPhantom:
    return make_patient(np.random.default_rng(seed), 0, diagnosis=diagnosis)


def _inside_and_around(
    values: np.ndarray, mask: np.ndarray, margin: int = 4
) -> tuple[float, float]:
    """Mean inside the mask; median of soft-tissue-range voxels in a box around it, outside it."""
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = idx.max(axis=0) + margin + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    around = values[box][~mask[box]]
    return float(values[mask].mean()), float(np.median(around))


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_ct_cyst_is_fluid_and_darker_than_surroundings(seed: int) -> None:
    p = _patient("cyst", seed)
    assert p.ct is not None
    inside, around = _inside_and_around(p.ct.values, p.ct.lesion_mask)
    assert -5 <= inside <= 25
    assert inside < around - 15


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_ct_tumor_enhances_above_surroundings(seed: int) -> None:
    p = _patient("tumor", seed)
    assert p.ct is not None
    inside, around = _inside_and_around(p.ct.values, p.ct.lesion_mask)
    assert 60 <= inside <= 115
    assert inside > around + 15


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_ct_calcification_is_very_dense(seed: int) -> None:
    p = _patient("calcification", seed)
    assert p.ct is not None
    inside, around = _inside_and_around(p.ct.values, p.ct.lesion_mask)
    assert 280 <= inside <= 1050
    assert inside > around + 200


def test_mr_contrast_bright_cyst_dark_calcification() -> None:
    for diagnosis, brighter in (("cyst", True), ("calcification", False)):
        p = _patient(diagnosis)
        assert p.mr is not None
        inside, around = _inside_and_around(p.mr.values, p.mr.lesion_mask)
        assert (inside > 2 * around) if brighter else (inside < 0.5 * around)


def test_normal_has_no_lesion_and_zero_severity() -> None:
    p = _patient("normal")
    assert p.lesions == () and p.severity_ml == 0.0
    for img in (p.ct, p.mr, p.xr):
        assert img is not None and not img.lesion_mask.any()


@pytest.mark.parametrize("diagnosis", DIAGNOSES[1:])
def test_lesions_show_on_every_modality(diagnosis: str) -> None:
    p = _patient(diagnosis)
    assert p.lesions
    for img in (p.ct, p.mr, p.xr):
        assert img is not None and img.lesion_mask.any()


def test_lesions_are_large_enough_to_see_at_model_resolution() -> None:
    for seed in range(3):
        for diagnosis in DIAGNOSES[1:]:
            assert all(les.radius_mm >= 8.0 for les in _patient(diagnosis, seed).lesions)


def test_cyst_severity_matches_ellipsoid_volume_bounds() -> None:
    # a cyst is an ellipsoid with semi-axes r, r*f1, r*f2, f in [0.85, 1.15]
    p = _patient("cyst", 5)
    low = sum(4 / 3 * math.pi * les.radius_mm**3 * 0.85**2 for les in p.lesions) / 1000
    high = sum(4 / 3 * math.pi * les.radius_mm**3 * 1.15**2 for les in p.lesions) / 1000
    assert low * 0.97 <= p.severity_ml <= high * 1.03


def test_geometry_ranges() -> None:
    for seed in range(6):
        p = make_patient(np.random.default_rng(seed), 0)
        assert p.ct is not None and p.mr is not None and p.xr is not None
        s, r, c = p.ct.grid.shape
        assert 24 <= s <= 48 and 128 <= r <= 192 and r == c
        assert 2.5 <= p.ct.grid.spacing[0] <= 6.0
        assert 300 <= r * p.ct.grid.spacing[1] <= 380
        s, r, c = p.mr.grid.shape
        assert 16 <= s <= 32 and 96 <= r <= 160 and 96 <= c <= 160
        assert all(192 <= n <= 320 for n in p.xr.values.shape)


def test_same_rng_same_patient_different_rng_different() -> None:
    a = make_patient(np.random.default_rng(7), 0, diagnosis="tumor")
    b = make_patient(np.random.default_rng(7), 0, diagnosis="tumor")
    c = make_patient(np.random.default_rng(8), 0, diagnosis="tumor")
    assert a.ct is not None and b.ct is not None and c.ct is not None
    np.testing.assert_array_equal(a.ct.values, b.ct.values)
    assert a.severity_ml == b.severity_ml
    assert a.severity_ml != c.severity_ml


def test_missing_modalities_are_not_rendered() -> None:
    p = make_patient(np.random.default_rng(1), 0, modalities=("MR",))
    assert p.modalities == ("MR",) and p.ct is None and p.xr is None


def test_unknown_diagnosis_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not one of"):
        make_patient(np.random.default_rng(0), 0, diagnosis="fracture")
