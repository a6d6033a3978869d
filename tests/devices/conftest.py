"""Shared fixtures for device tests: the tiny test bundle builders, loaded by file path."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from medfuse.bundle import ModelSpec


def _load_bundle_builders() -> ModuleType:
    path = Path(__file__).parents[1] / "bundle" / "bundle_builders.py"
    spec = importlib.util.spec_from_file_location("_medfuse_bundle_builders", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def builders() -> ModuleType:
    """tests/bundle/bundle_builders.py (tiny spec, real ONNX model, make_bundle)."""
    return _load_bundle_builders()


@pytest.fixture(scope="session")
def tiny_spec(builders: ModuleType) -> ModelSpec:
    spec: ModelSpec = builders.tiny_spec()
    return spec
