"""Shared fixtures for device tests: the tiny test model's spec."""

from __future__ import annotations

import pytest

from helpers import onnx_bundles
from medfuse.bundle import ModelSpec


@pytest.fixture(scope="session")
def tiny_spec() -> ModelSpec:
    """The spec of the tiny test model (``helpers.onnx_bundles.tiny_spec``)."""
    return onnx_bundles.tiny_spec()
