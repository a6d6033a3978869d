"""The append-only results file: durable lines, torn-tail repair, resume refusal, CSV mirror."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers.records import error_record, ok_record, unusable_record
from medfuse.errors import UsageError
from medfuse.runtime.results import ResultRecord, ResultsWriter, read_results, write_csv


def _rec(key: str, status: str = "ok") -> ResultRecord:
    return ok_record(key) if status == "ok" else error_record(key)


def _line(key: str) -> str:
    return json.dumps(_rec(key).to_json())


def test_writer_appends_one_line_per_record(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with ResultsWriter(out) as w:
        w.write(_rec("k1"))
        w.write(_rec("k2", "error"))
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [json.loads(x)["study"] for x in lines[:-1]] == ["k1", "k2"]


def test_writer_refuses_non_empty_file_without_resume(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(_line("k1") + "\n")
    with pytest.raises(UsageError, match="--resume"):
        ResultsWriter(out).open()


def test_writer_accepts_empty_existing_file(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.touch()
    with ResultsWriter(out) as w:
        w.write(_rec("k1"))
    assert read_results(out).keys == {"k1"}


def test_reader_drops_torn_final_line_and_writer_truncates_it(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    good = _line("k1") + "\n"
    torn = _line("k2")[:17]
    out.write_text(good + torn)
    log = read_results(out)
    assert log.keys == {"k1"}
    assert log.torn_bytes == len(torn)
    assert log.valid_bytes == len(good)
    with ResultsWriter(out, resume=True) as w:
        w.write(_rec("k2"))
    assert [json.loads(x)["study"] for x in out.read_text().splitlines()] == ["k1", "k2"]


def test_reader_drops_torn_final_line_with_newline(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(_line("k1") + "\n" + '{"study": "k2", "sta\n')
    log = read_results(out)
    assert log.keys == {"k1"} and log.torn_bytes > 0


def test_reader_keeps_complete_record_without_newline(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(_line("k1") + "\n" + _line("k2"))
    log = read_results(out)
    assert log.keys == {"k1", "k2"} and log.torn_bytes == 0 and log.needs_newline
    with ResultsWriter(out, resume=True) as w:
        w.write(_rec("k3"))
    assert [json.loads(x)["study"] for x in out.read_text().splitlines()] == ["k1", "k2", "k3"]


def test_reader_skips_bad_middle_line(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(_line("k1") + "\nnot json\n" + _line("k3") + "\n")
    log = read_results(out)
    assert log.keys == {"k1", "k3"} and log.bad_lines == (2,) and log.torn_bytes == 0


def test_reader_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_results(tmp_path / "absent.jsonl").records == ()


def test_records_read_back_typed_with_their_views(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    with ResultsWriter(out) as w:
        for rec in (_rec("k1"), _rec("k2", "error"), unusable_record("k3")):
            w.write(rec)
    ok, err, unusable = read_results(out).records
    assert ok == _rec("k1") and err == _rec("k2", "error") and unusable == unusable_record("k3")
    assert (ok.top_class, ok.probability, ok.severity, ok.error_type) == ("b", 0.75, 1.5, None)
    assert (err.status, err.top_class, err.error_type) == ("error", None, "CorruptDicomError")
    assert [(r.input, r.code) for r in unusable.reasons] == [
        ("ct", "too_few_frames"),
        ("xr", "no_series"),
    ]


def test_schema_1_records_of_older_runs_are_read_for_resume(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    old = {
        "study": "k1",
        "status": "ok",
        "outputs": {"diagnosis": {"kind": "classification", "top": "b", "probabilities": {"b": 1}}},
        "modalities": {"used": ["CT"], "missing": []},
        "timing_ms": {"total": 3.0},
        "model": {"name": "m"},
    }
    out.write_text(json.dumps(old) + "\n")
    (rec,) = read_results(out).records
    assert rec.schema == 1 and rec.ok and rec.top_class == "b" and rec.provenance is None
    # it may be an "ok" made from no image: resume screens its study again ...
    assert read_results(out).keys == frozenset()
    with ResultsWriter(out, resume=True) as w:
        w.write(_rec("k2"))
        w.write(_rec("k1"))
    log = read_results(out)
    assert log.keys == {"k1", "k2"} and len(log.records) == 3
    # ... and the new record supersedes it
    assert [(r.study, r.schema) for r in log.current] == [("k2", 2), ("k1", 2)]


def test_writer_refuses_schema_1_records(tmp_path: Path) -> None:
    legacy = ResultRecord(study="k1", status="error", error=_rec("k", "error").error, schema=1)
    with ResultsWriter(tmp_path / "r.jsonl") as w, pytest.raises(UsageError, match="schema-1"):
        w.write(legacy)


def test_a_complete_last_line_that_is_json_but_no_record_is_kept_not_torn(
    tmp_path: Path,
) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(_line("k1") + "\n" + '{"study": "k2", "status": "later"}\n')
    log = read_results(out)
    assert log.keys == {"k1"} and log.torn_bytes == 0 and log.bad_lines == (2,)
    size = out.stat().st_size
    with ResultsWriter(out, resume=True) as w:  # nothing of it is truncated away
        w.write(_rec("k3"))
    assert out.read_text().splitlines()[1] == '{"study": "k2", "status": "later"}'
    assert out.stat().st_size > size


def test_csv_mirrors_records(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    assert write_csv([_rec("k1"), _rec("k2", "error"), unusable_record("k3")], path) == 3
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["study"] for r in rows] == ["k1", "k2", "k3"]
    assert rows[0]["inputs"] == "ct:CT#1/32" and rows[0]["reasons"] == ""
    assert rows[2]["status"] == "no_usable_input" and rows[2]["top_class"] == ""
    assert rows[2]["reasons"] == "ct:too_few_frames xr:no_series"
    assert (
        rows[0]["top_class"] == "b"
        and float(rows[0]["p_a"]) == 0.25
        and float(rows[0]["severity"]) == 1.5
    )
    assert (
        rows[1]["status"] == "error"
        and rows[1]["error_type"] == "CorruptDicomError"
        and rows[1]["p_a"] == ""
    )


def test_a_second_writer_on_the_same_file_is_refused_naming_this_pid(tmp_path: Path) -> None:
    import os

    from medfuse.errors import ResultsInUseError

    out = tmp_path / "r.jsonl"
    with ResultsWriter(out) as w:
        w.write(ok_record("a"))
        with pytest.raises(ResultsInUseError, match=f"PID {os.getpid()}"):
            ResultsWriter(out, resume=True).open()
    with ResultsWriter(out, resume=True) as w:  # released on close
        w.write(ok_record("b"))
    assert [r.study for r in read_results(out).records] == ["a", "b"]


def test_the_writer_records_the_key_fingerprint_and_never_the_secret(tmp_path: Path) -> None:
    from medfuse.errors import SecretMismatchError
    from medfuse.runtime.results.keys import key_fingerprint
    from medfuse.runtime.results.lock import check_fingerprint, meta_path, read_fingerprint

    out, secret = tmp_path / "r.jsonl", bytes(range(32))
    with ResultsWriter(out, fingerprint=key_fingerprint(secret)) as w:
        w.write(ok_record("a"))
    assert read_fingerprint(out) == key_fingerprint(secret)
    assert secret.hex() not in meta_path(out).read_text()
    check_fingerprint(out, key_fingerprint(secret), has_records=True)
    with pytest.raises(SecretMismatchError, match="another study-key secret"):
        check_fingerprint(out, key_fingerprint(bytes(32)), has_records=True)
