"""Parity that cannot pass vacuously: degenerate reference outputs are reported and warned."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from medfuse.export import export_bundle, load_spec
from medfuse.export.parity import degenerate_outputs

SPEC = Path(__file__).resolve().parents[2] / "docs" / "examples" / "xray-resnet.json"


def test_zero_initialised_head_is_reported_as_vacuous(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from helpers.byom_nets import zero_head_xray

    with caplog.at_level(logging.WARNING, logger="medfuse.export.parity"):
        bundle = export_bundle(zero_head_xray(width=4), load_spec(SPEC), tmp_path / "z.medfuse")
    report = json.loads((bundle.path / "reports" / "export_parity.json").read_text())
    assert report["ok"] is True  # the numbers agree ...
    assert "noise floor" in report["degenerate"]["diagnosis"]  # ... but compared nothing
    assert "--golden-studies" in report["warnings"][0]
    assert any("vacuous" in r.getMessage() for r in caplog.records)


def test_a_working_network_is_not_degenerate(tmp_path: Path) -> None:
    from helpers.byom_nets import resnet_xray

    bundle = export_bundle(resnet_xray(width=4), load_spec(SPEC), tmp_path / "r.medfuse")
    report = json.loads((bundle.path / "reports" / "export_parity.json").read_text())
    assert report["degenerate"] == {} and report["warnings"] == []


def test_constant_outputs_across_inputs_are_degenerate() -> None:
    const = np.tile(np.array([[0.3, -1.2]]), (4, 1))
    varied = const + np.linspace(0, 0.1, 4)[:, None]
    found = degenerate_outputs({"c": [const[:1], const[1:]], "v": [varied]})
    assert "same for every input" in found["c"]
    assert "v" not in found
    assert degenerate_outputs({"one": [const[:1]]}) == {}  # a single row cannot show spread
