"""Fixtures for the benchmark tests."""

from __future__ import annotations

import pytest

from helpers.bench_builders import MakeReport, make_report


@pytest.fixture(name="make_report")
def _make_report() -> MakeReport:
    return make_report
