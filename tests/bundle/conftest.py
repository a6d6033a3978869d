"""Fixtures for bundle tests: a freshly written tiny bundle per test, a private zip cache, keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.onnx_bundles import make_bundle
from medfuse.bundle import Bundle
from medfuse.bundle.integrity import clear_verified_cache
from medfuse.bundle.signing import KeyFiles, generate_key


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFUSE_CACHE_DIR", str(tmp_path / "cache"))
    clear_verified_cache()


@pytest.fixture
def bundle(tmp_path: Path) -> Bundle:
    return make_bundle(tmp_path)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyFiles]:
    """Two Ed25519 key pairs written by ``generate_key``: a publisher's and a stranger's."""
    return {name: generate_key(tmp_path / "keys" / name) for name in ("publisher", "stranger")}
