"""Fixtures for bundle tests: a freshly written tiny bundle per test, a private zip cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.onnx_bundles import make_bundle
from medfuse.bundle import Bundle
from medfuse.bundle.integrity import clear_verified_cache


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFUSE_CACHE_DIR", str(tmp_path / "cache"))
    clear_verified_cache()


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return make_bundle(tmp_path)
