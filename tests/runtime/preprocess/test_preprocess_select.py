"""Series selection: modality, min_frames, the three rules, determinism."""

from __future__ import annotations

import itertools
from pathlib import Path

from medfuse.bundle.spec import SeriesSelection
from medfuse.runtime.dicom import Instance, Series, Study
from medfuse.runtime.preprocess import select_series, stable_series_order


def _series(uid: str, modality: str, frames: int, rows: int = 64, cols: int = 64) -> Series:
    inst = tuple(
        Instance(
            path=Path(f"/nowhere/{uid}/{i}"), sop_instance_uid=f"{uid}.{i}", rows=rows, columns=cols
        )
        for i in range(frames)
    )
    return Series(uid=uid, modality=modality, instances=inst)


CT_BIG = _series("1.2.10", "CT", 40, 256, 256)
CT_THIN = _series("1.2.9", "CT", 80, 128, 128)
CT_TIE = _series("1.2.11", "CT", 80, 64, 64)
MR = _series("1.2.3", "MR", 24)
CR = _series("1.2.4", "CR", 1, 2000, 2000)
DX = _series("1.2.5", "dx", 1, 3000, 2500)
SERIES = (CT_BIG, CT_THIN, CT_TIE, MR, CR, DX)


def _all_orders() -> list[Study]:
    return [Study(uid="1.2", series=p) for p in itertools.permutations(SERIES)][::37]


def test_most_frames_then_area_in_any_discovery_order() -> None:
    sel = SeriesSelection(("CT",), rule="most_frames")
    for study in _all_orders():
        assert select_series(study, sel) is CT_THIN  # 80 frames; tie with CT_TIE broken by area


def test_largest_area() -> None:
    sel = SeriesSelection(("CR", "DX"), rule="largest_area")
    for study in _all_orders():
        assert select_series(study, sel) is DX  # modality compared case-insensitively


def test_first_uses_numeric_uid_order() -> None:
    sel = SeriesSelection(("CT",), rule="first")
    for study in _all_orders():
        assert select_series(study, sel) is CT_THIN  # 1.2.9 < 1.2.10 < 1.2.11 as numbers
    assert [s.uid for s in stable_series_order([CT_TIE, CT_BIG, CT_THIN])] == [
        "1.2.9",
        "1.2.10",
        "1.2.11",
    ]


def test_min_frames_filters() -> None:
    study = Study(uid="1", series=SERIES)
    assert select_series(study, SeriesSelection(("CT",), min_frames=81)) is None
    assert select_series(study, SeriesSelection(("MR",), min_frames=24)) is MR
    assert select_series(study, SeriesSelection(("MR",), min_frames=25)) is None


def test_no_matching_modality() -> None:
    assert select_series(Study(uid="1", series=SERIES), SeriesSelection(("PT",))) is None
    assert select_series(Study(uid="1"), SeriesSelection(("CT",))) is None


def test_series_without_instances_is_ignored() -> None:
    empty = Series(uid="1.2.99", modality="CT")
    assert (
        select_series(Study(uid="1", series=(empty,)), SeriesSelection(("CT",), min_frames=0))
        is None
    )
