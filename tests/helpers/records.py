"""Builders of typed result records for the results tests (no DICOM, no model)."""

from __future__ import annotations

from medfuse.runtime.results import (
    ErrorInfo,
    InputUse,
    ModelInfo,
    OutputRecord,
    PresenceRule,
    Provenance,
    ResultRecord,
    SeriesNote,
)

MODEL = ModelInfo(name="m", version="1", variant="fp32", backend="onnxruntime", device="cpu")


def provenance(*, ct: bool = True, xr: bool = False) -> Provenance:
    """Two inputs (ct, xr); series 1 is a CT volume, series 2 a CR image."""
    inputs = {
        "ct": InputUse("CT", present=True, series=1, frames=32)
        if ct
        else InputUse("CT", reason="too_few_frames", detail="series 1 (CT, 4 frame(s)): found 4"),
        "xr": InputUse("CR", present=True, series=2, frames=1)
        if xr
        else InputUse("CR/DX", reason="no_series", detail="no CR/DX series in the study"),
    }
    series = (
        SeriesNote(1, "CT", 3, 32, 32, 512, 512, "native", used_by=("ct",) if ct else ()),
        SeriesNote(2, "CR", 1, 1, 1, 2000, 2000, "jpeg2000", used_by=("xr",) if xr else ()),
    )
    if not ct:
        series = (
            SeriesNote(1, "CT", 3, 4, 4, 512, 512, "native", reason="too_few_frames", detail="4"),
            series[1],
        )
    rule = PresenceRule()
    return Provenance(inputs=inputs, series=series, rule=rule, rule_met=ct or xr)


def ok_record(key: str) -> ResultRecord:
    return ResultRecord(
        study=key,
        status="ok",
        model=MODEL,
        outputs={
            "diagnosis": OutputRecord(
                "classification", top="b", probability=0.75, probabilities={"a": 0.25, "b": 0.75}
            ),
            "severity": OutputRecord("regression", values=(1.5,)),
        },
        provenance=provenance(),
        timing_ms={"read": 1.0, "total": 2.0},
    )


def error_record(key: str) -> ResultRecord:
    return ResultRecord(
        study=key,
        status="error",
        model=MODEL,
        error=ErrorInfo("CorruptDicomError", "x", "read"),
    )


def unusable_record(key: str) -> ResultRecord:
    return ResultRecord(
        study=key, status="no_usable_input", model=MODEL, provenance=provenance(ct=False)
    )
