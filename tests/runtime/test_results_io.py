"""The append-only results file: durable lines, torn-tail repair, resume refusal, CSV mirror."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from medfuse.errors import UsageError
from medfuse.runtime.results_io import ResultsWriter, read_results, summary_fields, write_csv


def _rec(key: str, status: str = "ok") -> dict[str, object]:
    if status == "ok":
        return {
            "study": key,
            "status": "ok",
            "outputs": {
                "diagnosis": {
                    "labels": ["a", "b"],
                    "probabilities": {"a": 0.25, "b": 0.75},
                    "top": "b",
                },
                "severity": {"value": 1.5},
            },
        }
    return {"study": key, "status": "error", "error": {"type": "CorruptDicomError", "message": "x"}}


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
    out.write_text(json.dumps(_rec("k1")) + "\n")
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
    good = json.dumps(_rec("k1")) + "\n"
    torn = json.dumps(_rec("k2"))[:17]
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
    out.write_text(json.dumps(_rec("k1")) + "\n" + '{"study": "k2", "sta\n')
    log = read_results(out)
    assert log.keys == {"k1"} and log.torn_bytes > 0


def test_reader_keeps_complete_record_without_newline(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps(_rec("k1")) + "\n" + json.dumps(_rec("k2")))
    log = read_results(out)
    assert log.keys == {"k1", "k2"} and log.torn_bytes == 0 and log.needs_newline
    with ResultsWriter(out, resume=True) as w:
        w.write(_rec("k3"))
    assert [json.loads(x)["study"] for x in out.read_text().splitlines()] == ["k1", "k2", "k3"]


def test_reader_skips_bad_middle_line(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps(_rec("k1")) + "\nnot json\n" + json.dumps(_rec("k3")) + "\n")
    log = read_results(out)
    assert log.keys == {"k1", "k3"} and log.bad_lines == (2,) and log.torn_bytes == 0


def test_reader_of_missing_file_is_empty(tmp_path: Path) -> None:
    assert read_results(tmp_path / "absent.jsonl").records == ()


def test_summary_fields_of_ok_and_error_records() -> None:
    ok = summary_fields(_rec("k1"))
    assert (ok["top_class"], ok["probability"], ok["severity"], ok["error_type"]) == (
        "b",
        0.75,
        1.5,
        None,
    )
    err = summary_fields(_rec("k2", "error"))
    assert (err["status"], err["top_class"], err["error_type"]) == (
        "error",
        None,
        "CorruptDicomError",
    )


def test_csv_mirrors_records(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    assert write_csv([_rec("k1"), _rec("k2", "error")], path) == 2
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["study"] for r in rows] == ["k1", "k2"]
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
