"""Signed bundles: keys, a signed round trip, and every refusal of the trust policy.

Every tampering case is what an attacker with write access to the bundle would do: edit
``manifest.json`` (and rewrite hashes to match), swap files, forge the signature file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from helpers.onnx_bundles import tiny_onnx
from medfuse.bundle import (
    NO_POLICY,
    Bundle,
    TrustedKey,
    TrustPolicy,
    VariantSource,
    load_public_key,
    load_signing_key,
    open_bundle,
    sign_bundle,
    update_bundle,
    use_trust_policy,
)
from medfuse.bundle.integrity import sha256_file
from medfuse.bundle.signing import SIGNATURE_NAME, KeyFiles, generate_key
from medfuse.errors import IntegrityError, UntrustedBundleError, UsageError


def _policy(*files: KeyFiles, **kw: Any) -> TrustPolicy:
    keys = tuple(TrustedKey(load_public_key(f.public), **kw) for f in files)
    return TrustPolicy(trusted_keys=keys, source="test")


def _sign(bundle: Bundle, key: KeyFiles) -> None:
    sign_bundle(bundle.path, load_signing_key(key.private))


def _edit_manifest(bundle: Bundle, edit: Any) -> None:
    path = bundle.path / "manifest.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2))


@pytest.fixture
def two_variants(bundle: Bundle, tmp_path: Path) -> Bundle:
    """The tiny bundle with a second variant (``int8``: the tiny model with W doubled)."""
    other = tiny_onnx(tmp_path / "src" / "tiny-x2.onnx", scale=2.0)
    return update_bundle(bundle, add_variants={"int8": VariantSource(other)})


# -- keys ---------------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads(keys: dict[str, KeyFiles]) -> None:
    k = keys["publisher"]
    assert stat.S_IMODE(k.private.stat().st_mode) == 0o600
    assert k.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert load_public_key(k.public).key_id == k.key_id == load_signing_key(k.private).public.key_id


def test_keygen_never_overwrites(keys: dict[str, KeyFiles]) -> None:
    before = keys["publisher"].private.read_bytes()
    with pytest.raises(UsageError, match="exists already"):
        generate_key(keys["publisher"].private.with_suffix(""))
    assert keys["publisher"].private.read_bytes() == before


def test_encrypted_key_needs_its_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDFUSE_KEY_PASSPHRASE", "correct horse")
    k = generate_key(tmp_path / "enc")
    assert b"ENCRYPTED" in k.private.read_bytes()
    assert load_signing_key(k.private).public.key_id == k.key_id
    monkeypatch.setenv("MEDFUSE_KEY_PASSPHRASE", "wrong")
    with pytest.raises(UsageError, match="wrong passphrase"):
        load_signing_key(k.private)
    monkeypatch.delenv("MEDFUSE_KEY_PASSPHRASE")
    with pytest.raises(UsageError, match="MEDFUSE_KEY_PASSPHRASE"):
        load_signing_key(k.private)


def test_openssh_public_key_is_read(keys: dict[str, KeyFiles], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    signing = load_signing_key(keys["publisher"].private)
    ssh = signing.private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (tmp_path / "k.pub").write_bytes(ssh + b" release@example\n")
    assert load_public_key(tmp_path / "k.pub").key_id == keys["publisher"].key_id


def test_a_key_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "ec.pub").write_bytes(
        pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(UsageError, match="not an Ed25519 key"):
        load_public_key(tmp_path / "ec.pub")
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(UsageError, match="not a PEM or OpenSSH public key"):
        load_public_key(tmp_path / "junk.pub")


# -- round trip ---------------------------------------------------------------------------------


def test_signed_round_trip(bundle: Bundle, keys: dict[str, KeyFiles]) -> None:
    _sign(bundle, keys["publisher"])
    opened = open_bundle(bundle.path, trust=_policy(keys["publisher"]))
    assert opened.signature is not None
    assert (opened.signature.status, opened.signature.trusted) == ("signed", True)
    assert opened.signature.key_ids == (keys["publisher"].key_id,)
    assert opened.digest == sha256_file(bundle.path / "manifest.json")
    assert opened.verify().ok
    assert opened.variant_file("fp32").is_file()


def test_without_a_policy_the_state_is_shown_not_enforced(
    bundle: Bundle, keys: dict[str, KeyFiles]
) -> None:
    state = open_bundle(bundle.path, trust=NO_POLICY).signature
    assert state is not None and (state.status, state.trusted) == ("unsigned", None)
    assert state.describe() == "unsigned"
    _sign(bundle, keys["stranger"])
    state = open_bundle(bundle.path, trust=NO_POLICY).signature
    assert state is not None and state.status == "signed" and state.trusted is None
    assert keys["stranger"].key_id in state.describe()
    assert "signer not checked" in state.describe()


def test_signatures_by_several_keys_are_kept(bundle: Bundle, keys: dict[str, KeyFiles]) -> None:
    _sign(bundle, keys["publisher"])
    _sign(bundle, keys["stranger"])
    _sign(bundle, keys["publisher"])  # re-signing replaces the key's own signature
    doc = json.loads((bundle.path / SIGNATURE_NAME).read_text())
    assert sorted(r["key_id"] for r in doc["signatures"]) == sorted(
        k.key_id for k in keys.values()
    )
    for k in keys.values():
        assert open_bundle(bundle.path, trust=_policy(k)).signature is not None


# -- refusals -----------------------------------------------------------------------------------


def test_unsigned_bundle_is_refused_under_a_policy(
    bundle: Bundle, keys: dict[str, KeyFiles]
) -> None:
    with pytest.raises(UntrustedBundleError, match=r"tiny\.medfuse.*it is unsigned.*medfuse sign"):
        open_bundle(bundle.path, trust=_policy(keys["publisher"]))


def test_bundle_signed_by_another_key_is_refused(
    bundle: Bundle, keys: dict[str, KeyFiles]
) -> None:
    _sign(bundle, keys["stranger"])
    with pytest.raises(
        UntrustedBundleError,
        match=rf"signed by key {keys['stranger'].key_id}, which the policy does not trust",
    ):
        open_bundle(bundle.path, trust=_policy(keys["publisher"]))


def _swap_labels(doc: dict[str, Any]) -> None:
    labels = doc["model"]["outputs"][0]["labels"]
    labels[0], labels[1] = labels[1], labels[0]


def _change_ct_window(doc: dict[str, Any]) -> None:
    doc["model"]["inputs"][0]["preprocessing"]["intensity"]["windows"][0]["center"] = 400


@pytest.mark.parametrize("edit", [_swap_labels, _change_ct_window], ids=["labels", "ct-window"])
def test_manifest_edited_after_signing_is_refused(
    bundle: Bundle, keys: dict[str, KeyFiles], edit: Any
) -> None:
    _sign(bundle, keys["publisher"])
    _edit_manifest(bundle, edit)
    assert open_bundle(bundle.path, trust=NO_POLICY).manifest != bundle.manifest  # it did change
    with pytest.raises(UntrustedBundleError, match=r"made for other bytes.*changed after signing"):
        open_bundle(bundle.path, trust=_policy(keys["publisher"]))


def test_swapped_variants_with_rewritten_hashes_are_refused(
    two_variants: Bundle, keys: dict[str, KeyFiles]
) -> None:
    b = two_variants
    _sign(b, keys["publisher"])
    fp32, int8 = b.path / "model.fp32.onnx", b.path / "model.int8.onnx"
    tmp = b.path / "swap"
    fp32.rename(tmp)
    int8.rename(fp32)
    tmp.rename(int8)

    def rewrite(doc: dict[str, Any]) -> None:
        for p, f in (("fp32", fp32), ("int8", int8)):
            doc["variants"][p]["sha256"] = doc["artifacts"][f.name] = sha256_file(f)

    _edit_manifest(b, rewrite)
    problems = open_bundle(b.path, trust=NO_POLICY).verify().problems
    assert [p.kind for p in problems] == ["signature"]  # hashes agree: only the signature tells
    with pytest.raises(UntrustedBundleError, match="made for other bytes"):
        open_bundle(b.path, trust=_policy(keys["publisher"]))


def test_forged_signature_is_refused(bundle: Bundle, keys: dict[str, KeyFiles]) -> None:
    _sign(bundle, keys["publisher"])
    sig = bundle.path / SIGNATURE_NAME
    doc = json.loads(sig.read_text())
    doc["signatures"][0]["signed_at"] = "2020-01-01T00:00:00Z"  # not what was signed
    sig.write_text(json.dumps(doc))
    with pytest.raises(UntrustedBundleError, match="does not verify"):
        open_bundle(bundle.path, trust=_policy(keys["publisher"]))


def test_signature_claiming_a_trusted_key_id_is_refused(
    bundle: Bundle, keys: dict[str, KeyFiles]
) -> None:
    _sign(bundle, keys["stranger"])
    sig = bundle.path / SIGNATURE_NAME
    doc = json.loads(sig.read_text())
    doc["signatures"][0]["key_id"] = keys["publisher"].key_id
    sig.write_text(json.dumps(doc))
    with pytest.raises(UntrustedBundleError, match="does not belong to its public_key"):
        open_bundle(bundle.path, trust=_policy(keys["publisher"]))


def test_malformed_signature_file(bundle: Bundle, keys: dict[str, KeyFiles]) -> None:
    (bundle.path / SIGNATURE_NAME).write_text("[" * 100_000)
    with pytest.raises(UntrustedBundleError, match="nested"):
        open_bundle(bundle.path, trust=_policy(keys["publisher"]))
    opened = open_bundle(bundle.path, trust=NO_POLICY)  # shown, not enforced, without a policy
    assert opened.signature is not None and opened.signature.status == "invalid"
    assert [p.kind for p in opened.verify().problems] == ["signature"]


def test_expired_key_is_refused(bundle: Bundle, keys: dict[str, KeyFiles]) -> None:
    import datetime as dt

    _sign(bundle, keys["publisher"])
    past = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    with pytest.raises(UntrustedBundleError, match=r"was trusted until 2020-01-01.*current key"):
        open_bundle(bundle.path, trust=_policy(keys["publisher"], expires=past))
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)
    assert open_bundle(bundle.path, trust=_policy(keys["publisher"], expires=future))


def test_refusal_reads_nothing_but_the_manifest(bundle: Bundle, keys: dict[str, KeyFiles]) -> None:
    """An untrusted bundle is refused from its manifest's bytes: its artifacts are not even
    there, and a hostile manifest never reaches the JSON parser."""
    _sign(bundle, keys["stranger"])
    for f in bundle.path.iterdir():
        if f.name not in ("manifest.json", SIGNATURE_NAME):
            shutil.rmtree(f) if f.is_dir() else f.unlink()
    with pytest.raises(UntrustedBundleError, match="does not trust"):
        open_bundle(bundle.path, trust=_policy(keys["publisher"]))
    (bundle.path / SIGNATURE_NAME).unlink()
    (bundle.path / "manifest.json").write_text("[" * 200_000)
    with pytest.raises(UntrustedBundleError, match="unsigned"):
        open_bundle(bundle.path, trust=_policy(keys["publisher"]))


def test_a_changed_bundle_loses_its_signature(
    bundle: Bundle, keys: dict[str, KeyFiles], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _sign(bundle, keys["publisher"])
    other = tiny_onnx(tmp_path / "src" / "x3.onnx", scale=3.0)
    with caplog.at_level(logging.WARNING, logger="medfuse.bundle.write"):
        updated = update_bundle(bundle, add_variants={"fp16": VariantSource(other)})
    assert not (bundle.path / SIGNATURE_NAME).exists()
    assert updated.signature is not None and updated.signature.status == "unsigned"
    assert "sign it again" in caplog.text


def test_a_damaged_bundle_is_not_signed(bundle: Bundle, keys: dict[str, KeyFiles]) -> None:
    (bundle.path / "golden.npz").write_bytes(b"damaged")
    with pytest.raises(IntegrityError, match=r"not signed: golden\.npz does not match"):
        _sign(bundle, keys["publisher"])
    assert not (bundle.path / SIGNATURE_NAME).exists()


def test_a_zip_is_signed_as_a_directory(bundle: Bundle, keys: dict[str, KeyFiles], tmp_path: Path) -> None:
    zpath = tmp_path / "b.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(bundle.path / "manifest.json", "manifest.json")
    with pytest.raises(UsageError, match="sign the bundle directory, then zip it"):
        sign_bundle(zpath, load_signing_key(keys["publisher"].private))


# -- pinning and the installed policy -----------------------------------------------------------


def test_expect_sha256(bundle: Bundle) -> None:
    digest = sha256_file(bundle.path / "manifest.json")
    assert open_bundle(bundle.path, trust=TrustPolicy(expect_sha256=digest.upper()))
    with pytest.raises(UntrustedBundleError, match=r"not the expected 0000000000000000…"):
        open_bundle(bundle.path, trust=TrustPolicy(expect_sha256="0" * 64))
    with pytest.raises(UsageError, match="64 hex digits"):
        TrustPolicy(expect_sha256="abc")


def test_installed_policy_applies_to_every_open(
    bundle: Bundle, keys: dict[str, KeyFiles]
) -> None:
    with use_trust_policy(_policy(keys["publisher"])), pytest.raises(UntrustedBundleError):
        open_bundle(bundle.path)
    assert open_bundle(bundle.path).signature is not None  # restored afterwards


def test_session_refuses_an_untrusted_bundle(bundle: Bundle, keys: dict[str, KeyFiles]) -> None:
    from medfuse import Session

    _sign(bundle, keys["stranger"])
    with use_trust_policy(_policy(keys["publisher"])), pytest.raises(UntrustedBundleError):
        Session(bundle.path)
    with use_trust_policy(_policy(keys["stranger"])), Session(bundle.path) as s:
        assert s.info.model_name == "tiny-fusion"


def test_env_var_keys_are_a_policy(
    bundle: Bundle, keys: dict[str, KeyFiles], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDFUSE_TRUSTED_KEYS", os.pathsep.join(str(k.public) for k in keys.values()))
    with pytest.raises(UntrustedBundleError, match=r"\$MEDFUSE_TRUSTED_KEYS.*unsigned"):
        open_bundle(bundle.path)
    _sign(bundle, keys["stranger"])
    assert open_bundle(bundle.path).signature is not None


def test_cryptography_loads_only_when_a_signature_is_handled() -> None:
    import subprocess
    import sys

    code = (
        "import sys, medfuse.bundle\n"
        "from medfuse.bundle import open_bundle, reference_bundle_path\n"
        "open_bundle(reference_bundle_path())\n"
        "print('cryptography' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
