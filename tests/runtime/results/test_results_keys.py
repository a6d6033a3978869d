"""Pseudonymous study keys are keyed HMACs, stable per secret and useless without it."""

from __future__ import annotations

import hashlib
import hmac
import stat

import pytest

from medfuse.errors import UsageError
from medfuse.runtime.results.keys import KEY_HEX_CHARS, load_or_create_secret, study_key

UID = "1.2.826.0.1.3680043.8.498.12345"


def test_key_is_hmac_sha256_of_the_uid() -> None:
    secret = b"s" * 32
    expected = hmac.new(secret, UID.encode(), hashlib.sha256).hexdigest()[:KEY_HEX_CHARS]
    assert study_key(UID, secret) == expected
    assert UID not in study_key(UID, secret)


def test_key_depends_on_secret_and_is_not_an_unkeyed_hash() -> None:
    a, b = study_key(UID, b"a" * 32), study_key(UID, b"b" * 32)
    assert a != b
    assert a not in hashlib.sha256(UID.encode()).hexdigest()


def test_short_secret_refused() -> None:
    with pytest.raises(UsageError, match="at least 16"):
        study_key(UID, b"short")


def test_secret_file_created_private_and_reused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "cfg" / "key.secret"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first


def test_uids_differing_only_in_non_ascii_characters_get_distinct_keys() -> None:
    """The key is taken over the exact UID (pydicom decodes a damaged UI value as Latin-1)."""
    secret = b"s" * 32
    uids = ["1.2.\xe9", "1.2.\xe8", "1.2.\xc3\xa9", "1.2.?", "1.2.??", "1.2.3", "1.2.3.0", "1.2.30"]
    keys = {study_key(u, secret) for u in uids}
    assert len(keys) == len(uids)


def test_ascii_uid_keys_are_unchanged_so_old_results_resume() -> None:
    secret = b"k" * 32
    expected = hmac.new(secret, UID.encode("ascii"), hashlib.sha256).hexdigest()[:KEY_HEX_CHARS]
    assert study_key(f"  {UID} ", secret) == expected
