"""Shared fixtures and the automatic skipping of hardware-gated tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.hardware import has_gpu, has_tensorrt


def _is_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gates = {
        "gpu": (has_gpu(), "needs an NVIDIA GPU"),
        "tensorrt": (has_tensorrt(), "needs TensorRT and a GPU"),
        "jetson": (_is_jetson(), "needs a Jetson device"),
        "slow": (os.environ.get("MEDFUSE_SLOW") == "1", "slow; set MEDFUSE_SLOW=1 to run"),
    }
    for item in items:
        for marker, (ok, why) in gates.items():
            if marker in item.keywords and not ok:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def _no_ambient_trust_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No host trust config or key list leaks into a test (subprocesses inherit this too)."""
    monkeypatch.setenv("MEDFUSE_TRUST_CONFIG", "")
    monkeypatch.delenv("MEDFUSE_TRUSTED_KEYS", raising=False)
    monkeypatch.delenv("MEDFUSE_KEY_PASSPHRASE", raising=False)


@pytest.fixture(scope="session")
def _private_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("medfuse-state")


@pytest.fixture(autouse=True)
def _no_user_state(monkeypatch: pytest.MonkeyPatch, _private_state: Path) -> None:
    """medfuse's own state (the study-key secret, extracted bundles, calibration sets, the
    demo's studies) goes to a folder of the test session, never the user's (subprocesses
    inherit this too). A test that needs its own sets these again."""
    monkeypatch.setenv("MEDFUSE_KEY_SECRET_FILE", str(_private_state / "study-key.secret"))
    monkeypatch.setenv("MEDFUSE_CACHE_DIR", str(_private_state / "cache"))
