"""Streaming discovery: studies handed on as their folders are read, and a screening run whose
current records (the last per study key) are what it would write had discovery come first —
also for a study split over folders, which the stream can only know once every header is read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import fault_studies as fault
from helpers import screening_fixtures as fx
from medfuse.runtime.dicom import Study, discover_studies
from medfuse.runtime.dicom.streaming import StudyStream, group_files
from medfuse.runtime.results import read_results
from medfuse.runtime.screening import screen_studies


def test_groups_are_the_entries_under_the_common_folder() -> None:
    files = ["/r/a/s1/1", "/r/a/s1/2", "/r/a/s2/1", "/r/b/x/1", "/r/loose"]
    # the files directly in the common folder come first
    assert group_files(files) == [files[4:], files[:3], files[3:4]]
    flat = ["/r/1", "/r/2"]
    assert group_files(flat) == [flat]  # a flat folder is one group
    one = ["/r/p/s/1", "/r/p/s/2"]
    assert group_files(one) == [one]
    assert group_files(["/r/ab/1", "/r/a/1"]) == [["/r/ab/1"], ["/r/a/1"]]  # not a prefix
    assert group_files(["/only"]) == [["/only"]]
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
    assert (stream.discovery.skipped, stream.discovery.files_seen) == (
        final.skipped,
        final.files_seen,
    )
    assert stream.studies_found == len(final.studies)
    # each study once (none spans folders), each as a full discovery makes it
    assert sorted([first, *rest], key=lambda s: s.uid) == list(final.studies)
    assert not any(stream.changed(s.uid) for s in final.studies)


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
    seen: list[tuple[Study, bool]] = []
    for study in stream:
        seen.append((study, stream.done))
    full = discover_studies(split)
    assert stream.streaming is False  # the late folder touched a study already handed out
    finals = [s for s, at_end in seen if at_end or not stream.changed(s.uid)]
    # every final form exactly once, each as a full discovery makes it
    assert sorted(finals, key=lambda s: s.uid) == list(full.studies)
    assert stream.studies_found == len(full.studies) == 4
    stale = [s for s, at_end in seen if not at_end and stream.changed(s.uid)]
    assert len(stale) == 1  # the split study went out incomplete, once
    assert "mr" not in {se.modality.lower() for se in stale[0].series}


def test_screening_a_split_study_ends_with_what_a_full_discovery_would_give(
    split: Path, tmp_path: Path
) -> None:
    bundle = fx.shipped_or_tiny_bundle(tmp_path / "b")
    out = tmp_path / "r.jsonl"
    summary = screen_studies(split, out, bundle=bundle, key_secret_file=tmp_path / "k")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    current = read_results(out).current
    assert summary.screened == len(current) == summary.studies_found == 4
    assert len({r.study for r in current}) == 4  # one current record per study
    assert summary.rescreened == 1
    # the split study's current (last) record rests on its MR too: the final study was screened
    used = [r.provenance.inputs["mr"].series for r in current if r.provenance]
    assert len(used) == 4 and all(u is not None for u in used)
    # its first record, if written before the late folder was read, came earlier in the file
    assert len(lines) in (4, 5)
    assert summary.wall_s >= summary.elapsed_s > 0 and summary.studies_per_s_wall > 0
    split_s = summary.time_split_s()
    assert {"discovery", "read", "preprocess", "inference"} <= set(split_s)
    # the work of every screening counts, the split study's first one too (written or not)
    on_file = sum(r["timing_ms"].get("inference", 0.0) for r in lines) / 1e3
    if len(lines) == 5:
        assert split_s["inference"] == pytest.approx(on_file, abs=5e-3)
    else:
        assert split_s["inference"] > on_file


def test_resume_screens_again_a_split_study_recorded_from_part_of_its_files(
    split: Path, tmp_path: Path
) -> None:
    """A run stopped before it read the late folder left a record made without the MR; the
    resumed run finds the MR and supersedes that record, and leaves the others alone."""
    bundle = fx.shipped_or_tiny_bundle(tmp_path / "b")
    secret = tmp_path / "k"
    out = tmp_path / "r.jsonl"
    partial = tmp_path / "partial"
    shutil.copytree(split, partial, ignore=shutil.ignore_patterns("zz-late-mr"))
    screen_studies(partial, out, bundle=bundle, key_secret_file=secret)
    before = read_results(out).current
    assert len(before) == 4
    assert sum(r.provenance.inputs["mr"].series is None for r in before if r.provenance) == 1
    summary = screen_studies(split, out, bundle=bundle, key_secret_file=secret, resume=True)
    assert (summary.already_done, summary.screened) == (3, 1)
    after = read_results(out)
    assert len(after.records) == 5 and len(after.current) == 4
    assert all(r.provenance.inputs["mr"].series is not None for r in after.current if r.provenance)


@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
def test_discovery_stays_a_bounded_number_of_studies_ahead_and_stops_when_closed(
    tmp_path: Path, process: bool
) -> None:
    """The feed holds at most AHEAD studies the pipeline has not taken (memory stays flat
    however far discovery could run ahead), and closing it stops discovery."""
    import time

    from medfuse.runtime.feed import AHEAD, DiscoveryFeed
    from medfuse.synthetic import generate_studies

    root = tmp_path / "in"
    generate_studies(root, AHEAD + 4, seed=33)
    feed = DiscoveryFeed(root, b"k" * 32, frozenset(), process=process)
    assert feed.wait_first()
    deadline = time.monotonic() + 30
    while not process and feed._queue.qsize() < AHEAD - 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # discovery would have read every folder by now, had it not waited
    if not process:  # the process is held back by the pipe's buffer (a few studies)
        assert feed._queue.qsize() <= AHEAD
    if process:
        assert feed.process.is_alive()  # waiting for room, not finished
    else:
        assert not feed.stream.done  # it waits for the pipeline: AHEAD studies queued, no more
    feed.close()
    if process:
        assert not feed.process.is_alive() and feed.process.exitcode == 0  # ended, not killed
    else:
        assert not feed._thread.is_alive()
        assert not feed.stream.done  # stopped, not run to the end


@pytest.mark.parametrize("process", [False, True], ids=["thread", "process"])
def test_a_feed_taken_to_the_end_counts_every_study(patients: Path, process: bool) -> None:
    from medfuse.runtime.feed import DiscoveryFeed

    feed = DiscoveryFeed(patients, b"k" * 32, frozenset(), process=process)
    studies = list(feed)
    feed.join()
    assert len(studies) == feed.pending_total() == feed.stream.studies_found == 4
    assert all(final or not feed.stream.changed(s.uid) for _, s, final in feed.order)
    assert feed.stream.discovery.files_seen == sum(1 for f in patients.rglob("*") if f.is_file())


def test_a_discovery_process_hands_on_what_the_thread_does(split: Path) -> None:
    """The same (key, study, final) sequence, the same changed study, counts and skipped
    files, whether discovery runs in a process or on a thread — also for a study split over
    folders, whose provisional form is handed on before the late folder changes it."""
    from medfuse.runtime.feed import DiscoveryFeed

    runs = []
    for process in (False, True):
        feed = DiscoveryFeed(split, b"k" * 32, frozenset(), process=process)
        studies = list(feed)
        feed.join()
        assert (feed.process is not None) is process
        runs.append((studies, list(feed.order), feed))
    (t_studies, t_order, thread), (p_studies, p_order, proc) = runs
    assert p_studies == t_studies and p_order == t_order
    changed = {s.uid for _, s, _ in t_order if thread.stream.changed(s.uid)}
    assert len(changed) == 1
    assert changed == {s.uid for _, s, _ in p_order if proc.stream.changed(s.uid)}
    assert dict(proc.stream.discovery.skipped) == dict(thread.stream.discovery.skipped)
    assert proc.stream.discovery.skipped.get("not_dicom")  # the synthetic notes, counted
    assert (proc.pending_total(), proc.already) == (thread.pending_total(), thread.already)
    assert proc.stream.busy_s > 0


def test_a_discovery_process_that_dies_is_reported_not_waited_for(tmp_path: Path) -> None:
    """Killed mid-run (out of memory, a crashing decoder), the process's end is an error the
    run reports, not a feed that waits forever."""
    import os
    import signal

    from medfuse.errors import MedfuseError
    from medfuse.runtime.feed import AHEAD, DiscoveryFeed
    from medfuse.synthetic import generate_studies

    root = tmp_path / "in"
    generate_studies(root, AHEAD + 4, seed=35)
    feed = DiscoveryFeed(root, b"k" * 32, frozenset(), process=True)
    assert feed.wait_first()
    os.kill(feed.process.pid, signal.SIGKILL)
    with pytest.raises(MedfuseError, match=r"discovery stopped unexpectedly .*code -9"):
        for _ in feed:
            pass
    feed.close()


@pytest.mark.parametrize("delay", [0.0, 3.0], ids=["during", "after-discovery"])
def test_a_discovery_process_outliving_its_run_ends(tmp_path: Path, delay: float) -> None:
    """A run killed before it closed its feed leaves no discovery process behind (it would keep
    the run's files open and wait for room forever)."""
    import os
    import subprocess
    import sys
    import time

    from medfuse.runtime.feed import AHEAD
    from medfuse.synthetic import generate_studies

    root = tmp_path / "in"
    generate_studies(root, AHEAD + 4, seed=36)
    code = (
        f"delay = {delay};"
        "import os, sys; from pathlib import Path; from medfuse.runtime.feed import DiscoveryFeed;"
        f"f = DiscoveryFeed(Path({str(root)!r}), b'k' * 32, frozenset(), process=True);"
        "f.wait_first(); print(f.process.pid, flush=True); import time; time.sleep(delay);"
        "os._exit(0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        pytest.fail("the discovery process outlived its run")


def _final_forms(stream: StudyStream) -> list[Study]:
    seen = [(s, stream.done) for s in stream]
    return sorted(
        (s for s, at_end in seen if at_end or not stream.changed(s.uid)), key=lambda s: s.uid
    )


def test_a_study_loose_in_the_common_folder_counts_an_unreadable_file_read_later(
    tmp_path: Path,
) -> None:
    """A study whose files lie directly in the common folder lies beside every sub-folder: a
    damaged file found later, in any of them, is counted on it, as a full discovery does."""
    from medfuse.synthetic import generate_studies

    src = tmp_path / "src"
    generate_studies(src, 3, seed=34)
    patients = sorted(p for p in src.iterdir() if p.is_dir())
    root = tmp_path / "in"
    root.mkdir()
    for f in (f for f in patients[0].rglob("*") if f.is_file()):
        shutil.copy(f, root / f"{f.parent.name}-{f.name}")  # loose in the root
    for p in patients[1:]:
        shutil.copytree(p, root / p.name)
    donor = next(f for f in sorted((root / patients[2].name).rglob("*")) if f.is_file())
    (root / patients[2].name / "broken.dcm").write_bytes(donor.read_bytes()[:200])
    full = discover_studies(root)
    assert max(s.unreadable_nearby for s in full.studies) >= 1
    stream = StudyStream(root)
    assert _final_forms(stream) == list(full.studies)


def test_a_relative_root_streams_folder_by_folder(
    patients: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(patients)
    stream = StudyStream(".")
    it = iter(stream)
    next(it)
    assert not stream.done  # one patient's folder read, not the whole tree
    rest = list(it)
    assert 1 + len(rest) == stream.studies_found == 4


def test_a_stopped_stream_ends_before_reading_the_rest(patients: Path) -> None:
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 3

    stream = StudyStream(patients, stop=stop)
    assert list(stream) == []  # stopped inside the first folder
    assert not stream.done and len(asked) == 4
