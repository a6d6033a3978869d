"""Streaming discovery: studies handed on as their folders are read, and a screening run that
writes exactly what it would write had discovery come first — also for a study split over
folders, which the stream can only know once every header is read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import fault_studies as fault
from helpers import screening_fixtures as fx
from medfuse.runtime.dicom import discover_studies
from medfuse.runtime.dicom.streaming import StudyStream, group_files
from medfuse.runtime.screening import screen_studies


def test_groups_are_the_entries_under_the_common_folder() -> None:
    files = [
        Path("/r/a/s1/1"),
        Path("/r/a/s1/2"),
        Path("/r/a/s2/1"),
        Path("/r/b/x/1"),
        Path("/r/loose"),
    ]
    assert group_files(files) == [files[:3], files[3:4], files[4:]]
    flat = [Path("/r/1"), Path("/r/2")]
    assert group_files(flat) == [flat]  # a flat folder is one group
    one = [Path("/r/p/s/1"), Path("/r/p/s/2")]
    assert group_files(one) == [one]
    assert group_files([]) == []


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medfuse.synthetic import generate_studies

    root = tmp_path_factory.mktemp("stream") / "in"
    generate_studies(root, 4, seed=31)
    return root


def test_the_first_study_comes_before_the_other_folders_are_read(patients: Path) -> None:
    stream = StudyStream(patients)
    it = iter(stream)
    first = next(it)
    assert not stream.done  # the other patients' headers are not read yet
    rest = list(it)
    assert stream.done
    final = discover_studies(patients)
    assert stream.discovery == final
    assert {s.uid for s in [first, *rest]} == {s.uid for s in final.studies}
    assert len([first, *rest]) == len(final.studies)  # each study once: none spans folders
    assert all(stream.is_final(s) for s in [first, *rest])


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four patients; one study's MR series moved into a folder of its own, read last."""
    from medfuse.synthetic import generate_studies

    root = tmp_path_factory.mktemp("split") / "in"
    generate_studies(root, 8, seed=32)
    complete = [p for p in sorted(root.iterdir()) if p.is_dir() and "MR" in fault.series_dirs(p)]
    for extra in [p for p in root.iterdir() if p.is_dir()][:]:
        if extra not in complete[:4]:
            shutil.rmtree(extra)
    mr = fault.series_dirs(complete[0])["MR"]
    shutil.move(str(mr), root / "zz-late-mr")
    return root


def test_a_study_split_over_folders_is_yielded_final_once_at_the_end(split: Path) -> None:
    stream = StudyStream(split)
    seen = list(stream)
    final = {s.uid: s for s in stream.discovery.studies}
    assert stream.streaming is False  # the late folder touched a study already handed out
    finals = [s for s in seen if stream.is_final(s)]
    assert sorted(s.uid for s in finals) == sorted(final)  # every final form exactly once
    assert len(finals) == len(final)
    assert any(not stream.is_final(s) for s in seen)  # the split study went out incomplete


def test_screening_a_split_study_writes_what_a_full_discovery_would(
    split: Path, tmp_path: Path
) -> None:
    bundle = fx.shipped_or_tiny_bundle(tmp_path / "b")
    out = tmp_path / "r.jsonl"
    summary = screen_studies(split, out, bundle=bundle, key_secret_file=tmp_path / "k")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert summary.screened == len(lines) == summary.studies_found == 4
    assert len({r["study"] for r in lines}) == 4  # one record per study
    assert summary.rescreened >= 1
    # the split study's record rests on its MR too: the final study was screened
    used = [r["provenance"]["inputs"]["mr"]["series"] for r in lines]
    assert all(u is not None for u in used)
    assert summary.wall_s >= summary.elapsed_s > 0 and summary.studies_per_s_wall > 0
    split_s = summary.time_split_s()
    assert {"discovery", "read", "preprocess", "inference"} <= set(split_s)
