"""Where the trust policy comes from: explicit keys, ``$MEDFUSE_TRUSTED_KEYS``, the device
maker's config file (and its ``locked`` switch)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from medfuse.bundle import Bundle, load_signing_key, open_bundle, resolve_policy, sign_bundle
from medfuse.bundle.signing import KeyFiles
from medfuse.errors import UntrustedBundleError, UsageError


def _config(tmp_path: Path, doc: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "etc" / "trust.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("MEDFUSE_TRUST_CONFIG", str(path))
    return path


def _rel(key: Path, config_dir: Path) -> str:
    return os.path.relpath(key, config_dir)


def test_no_source_is_no_policy() -> None:
    policy = resolve_policy()
    assert not policy.active and policy.describe() == "nothing (no trust policy)"


def test_config_file_is_the_device_policy(
    bundle: Bundle, keys: dict[str, KeyFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    entry = {"file": _rel(keys["publisher"].public, etc), "name": "ACME release"}
    path = _config(tmp_path, {"trusted_keys": [entry]}, monkeypatch)
    with pytest.raises(UntrustedBundleError, match=rf"\({path}\): it is unsigned.*ACME release"):
        open_bundle(bundle.path)
    sign_bundle(bundle.path, load_signing_key(keys["publisher"].private))
    state = open_bundle(bundle.path).signature
    assert state is not None and state.trusted and "ACME release" in state.describe()


def test_config_expiry_refuses_an_old_key(
    bundle: Bundle, keys: dict[str, KeyFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = {"file": _rel(keys["publisher"].public, tmp_path / "etc"), "expires": "2021-06-30"}
    _config(tmp_path, {"trusted_keys": [entry]}, monkeypatch)
    sign_bundle(bundle.path, load_signing_key(keys["publisher"].private))
    with pytest.raises(UntrustedBundleError, match="trusted until 2021-06-30 00:00 UTC"):
        open_bundle(bundle.path)


def test_explicit_keys_win_over_env_and_config(
    keys: dict[str, KeyFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = {"file": _rel(keys["publisher"].public, tmp_path / "etc")}
    _config(tmp_path, {"trusted_keys": [entry]}, monkeypatch)
    assert resolve_policy().trusted_keys[0].key.key_id == keys["publisher"].key_id
    monkeypatch.setenv("MEDFUSE_TRUSTED_KEYS", str(keys["stranger"].public))
    assert resolve_policy().source == "$MEDFUSE_TRUSTED_KEYS"
    explicit = resolve_policy([keys["publisher"].public], expect_sha256="a" * 64)
    assert explicit.source == "--trusted-key" and explicit.expect_sha256 == "a" * 64


def test_locked_config_refuses_other_keys(
    keys: dict[str, KeyFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = {"file": _rel(keys["publisher"].public, tmp_path / "etc")}
    _config(tmp_path, {"trusted_keys": [entry], "locked": True}, monkeypatch)
    with pytest.raises(UsageError, match="is locked: --trusted-key may not replace its keys"):
        resolve_policy([keys["stranger"].public])
    monkeypatch.setenv("MEDFUSE_TRUSTED_KEYS", str(keys["stranger"].public))
    with pytest.raises(UsageError, match=r"locked: \$MEDFUSE_TRUSTED_KEYS"):
        resolve_policy()
    monkeypatch.delenv("MEDFUSE_TRUSTED_KEYS")
    pinned = resolve_policy(expect_sha256="b" * 64)  # a pin adds to a locked policy
    assert pinned.requires_signature and pinned.expect_sha256 == "b" * 64


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"trusted_keys": []}, "non-empty list"),
        ({"trusted_keys": [{"name": "x"}]}, r"trusted_keys\[0\]: expected"),
        ({"trusted_keys": [{"file": "missing.pub"}]}, "cannot read it"),
        ({"trusted_keys": [{"file": "k.pub", "expires": "soon"}]}, "not an ISO date"),
        ({"trusted_keys": [{"file": "k.pub"}], "lock": True}, "unknown field"),
        ({"trusted_keys": [{"file": "k.pub"}], "locked": "yes"}, "true or false"),
    ],
)
def test_malformed_config_names_file_and_field(
    doc: Any, message: str, keys: dict[str, KeyFiles], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _config(tmp_path, doc, monkeypatch)
    (path.parent / "k.pub").write_bytes(keys["publisher"].public.read_bytes())
    with pytest.raises(UsageError, match=message):
        resolve_policy()


def test_named_config_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFUSE_TRUST_CONFIG", str(tmp_path / "nope.json"))
    with pytest.raises(UsageError, match="no such trust config file"):
        resolve_policy()
