"""Outputs carry their unit: the reference model's log1p(mL) severity is stored and shown in mL,
converted in one place (:mod:`medfuse.bundle.units`)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers import screening_fixtures as fx
from medfuse.bundle.units import OutputUnit, output_units


def test_units_from_spec_extra() -> None:
    assert output_units({"severity_transform": "log1p_ml"}) == {
        "severity": OutputUnit("mL", "log1p")
    }
    general = {"output_units": {"volume": {"unit": "cm^3"}, "bad": {"unit": "x", "transform": "?"}}}
    assert output_units(general) == {"volume": OutputUnit("cm^3", "identity")}
    assert output_units(None) == {}


def test_one_conversion_scalar_and_array_agree() -> None:
    unit = OutputUnit("mL", "log1p")
    values = [-0.5, 0.0, 2.507, 5.0]
    arr = unit.convert_array(np.asarray(values))
    assert [unit.convert(v) for v in values] == pytest.approx(list(arr))
    assert unit.convert(2.507) == pytest.approx(math.expm1(2.507))
    assert unit.convert(-0.5) == 0.0  # a volume is never negative
    assert unit.convert(float("nan")) is None
    assert unit.column("severity") == "severity_ml"


def test_run_jsonl_and_csv_carry_severity_in_ml(tmp_path: Path) -> None:
    from medfuse.synthetic import generate_studies

    studies = tmp_path / "studies"
    generate_studies(studies, 2, seed=4)
    out, csv_path = tmp_path / "r.jsonl", tmp_path / "r.csv"
    proc = subprocess.run(
        [*fx.CLI, "run", str(studies), "--out", str(out), "--csv", str(csv_path), "--json"],
        capture_output=True,
        text=True,
        env=fx.cli_env(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    with csv_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "severity_ml" in rows[0] and "severity" not in rows[0]
    for line, row in zip(lines, rows, strict=True):
        sev = line["outputs"]["severity"]
        assert sev["unit"] == "mL"
        assert sev["value_in_unit"] == pytest.approx(max(0.0, math.expm1(sev["value"])), rel=1e-5)
        assert float(row["severity_ml"]) == pytest.approx(sev["value_in_unit"], rel=1e-5)
