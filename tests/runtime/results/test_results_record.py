"""ResultRecord: the JSON round trip, and no 'ok' that rests on nothing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from helpers.records import MODEL, error_record, ok_record, provenance, unusable_record
from medfuse.errors import UsageError
from medfuse.runtime.results import SCHEMA, ErrorInfo, OutputRecord, ResultRecord


@pytest.mark.parametrize("make", [ok_record, error_record, unusable_record])
def test_json_round_trip(make) -> None:  # type: ignore[no-untyped-def]
    rec = make("k1")
    data = json.loads(json.dumps(rec.to_json()))
    assert data["schema"] == SCHEMA
    assert ResultRecord.from_json(data) == rec


def test_ok_needs_outputs_and_a_met_presence_rule() -> None:
    outputs = {"d": OutputRecord("classification", top="a", probabilities={"a": 1.0})}
    with pytest.raises(UsageError, match="presence rule is met"):
        ResultRecord("k", "ok", MODEL, outputs=outputs)  # no provenance
    unmet = dataclasses.replace(provenance(), rule_met=False)
    with pytest.raises(UsageError, match="presence rule is met"):
        ResultRecord("k", "ok", MODEL, outputs=outputs, provenance=unmet)
    with pytest.raises(UsageError, match="needs outputs"):
        ResultRecord("k", "ok", MODEL, provenance=provenance())


def test_a_record_without_a_result_carries_no_outputs_and_says_why() -> None:
    outputs = {"d": OutputRecord("classification", top="a", probabilities={"a": 1.0})}
    with pytest.raises(UsageError, match="carries no outputs"):
        ResultRecord("k", "no_usable_input", MODEL, outputs=outputs)
    with pytest.raises(UsageError, match="needs its error"):
        ResultRecord("k", "error", MODEL)
    data = unusable_record("k").to_json()
    assert "outputs" not in data
    assert data["reasons"] == [
        {"input": "ct", "code": "too_few_frames", "detail": "series 1 (CT, 4 frame(s)): found 4"},
        {"input": "xr", "code": "no_series", "detail": "no CR/DX series in the study"},
    ]


def test_unknown_status_and_newer_schema_are_refused() -> None:
    with pytest.raises(UsageError, match="not one of"):
        ResultRecord("k", "maybe", MODEL, error=ErrorInfo("E", "m"))
    data = ok_record("k").to_json() | {"schema": SCHEMA + 1}
    with pytest.raises(ValueError, match="newer"):
        ResultRecord.from_json(data)


def test_ok_record_names_what_it_rests_on() -> None:
    data = ok_record("k").to_json()
    assert data["modalities"] == {"used": ["CT"], "missing": ["CR/DX"]}
    assert data["provenance"]["inputs"]["ct"] == {
        "modality": "CT",
        "present": True,
        "series": 1,
        "frames": 32,
    }
    assert data["provenance"]["rule"] == {"min_present": 1, "required": [], "met": True}
    assert [s["n"] for s in data["provenance"]["series"]] == [1, 2]
