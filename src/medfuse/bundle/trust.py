"""The trust policy: which bundles may be opened, decided from the manifest's bytes alone.

A policy holds *trusted keys* (a bundle must carry a valid signature by one of them, made while
the key was trusted) and/or an *expected sha256* (a pinned bundle). Without either there is no
policy: every bundle opens, and its signature state is only shown.

Where a policy comes from, most specific first (the first source present decides the keys):

1. the caller: ``open_bundle(path, trust=TrustPolicy(...))``, or the CLI's ``--trusted-key``
   (installed for the command with :func:`use_trust_policy`);
2. ``$MEDFUSE_TRUSTED_KEYS``: public key files separated by ``os.pathsep``;
3. the device maker's config file, ``$MEDFUSE_TRUST_CONFIG`` (empty: none) or
   ``/etc/medfuse/trust.json``::

       {"trusted_keys": [{"file": "keys/acme-release.pub", "name": "ACME release 2026",
                          "expires": "2027-07-01"}],
        "locked": true}

   ``file`` is relative to the config file; ``expires`` (ISO date or UTC time) is the moment
   the key stops being trusted. ``locked`` forbids the other two sources (a device whose maker
   decides which publishers it trusts).

``--expect-sha256`` is a requirement of its own: it adds to whatever keys apply.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from medfuse.bundle.limits import SMALL_DOCUMENT_LIMITS, load_json, read_bounded, shown
from medfuse.bundle.signing import (
    SIGNATURE_NAME,
    PublicKey,
    SignatureRecord,
    load_public_key,
    parse_signatures,
)
from medfuse.errors import UntrustedBundleError, UsageError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
    "KEYS_ENV",
    "NO_POLICY",
    "SignatureState",
    "TrustPolicy",
    "TrustedKey",
    "active_policy",
    "check_sha256_text",
    "check_trust",
    "load_trust_config",
    "resolve_policy",
    "use_trust_policy",
]

logger = logging.getLogger(__name__)

KEYS_ENV = "MEDFUSE_TRUSTED_KEYS"
CONFIG_ENV = "MEDFUSE_TRUST_CONFIG"
DEFAULT_CONFIG = Path("/etc/medfuse/trust.json")


@dataclass(frozen=True)
class TrustedKey:
    """A public key the policy trusts, with a display name and an optional expiry (UTC)."""

    key: PublicKey
    name: str = ""
    expires: _dt.datetime | None = None

    @property
    def label(self) -> str:
        """``key id (name)`` for messages."""
        return f"{self.key.key_id} ({self.name})" if self.name else self.key.key_id


@dataclass(frozen=True)
class TrustPolicy:
    """What a bundle must satisfy to be opened.

    Parameters
    ----------
    trusted_keys:
        A valid signature by one of these keys is required (none: no signature required).
    expect_sha256:
        The bundle's digest must be this (the sha256 of its ``manifest.json``; for a zip, the
        zip file's sha256 works too).
    source:
        Where the keys came from, for messages (``"--trusted-key"``, ``"$MEDFUSE_TRUSTED_KEYS"``,
        a config file's path).
    locked:
        Set by a config file that forbids other key sources.
    """

    trusted_keys: tuple[TrustedKey, ...] = ()
    expect_sha256: str | None = None
    source: str = ""
    locked: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if self.expect_sha256 is not None:
            object.__setattr__(self, "expect_sha256", check_sha256_text(self.expect_sha256))

    @property
    def requires_signature(self) -> bool:
        """Whether a signature by a trusted key is required."""
        return bool(self.trusted_keys)

    @property
    def active(self) -> bool:
        """Whether the policy refuses anything at all."""
        return self.requires_signature or self.expect_sha256 is not None

    def describe(self) -> str:
        """One line: what this policy requires."""
        parts = []
        if self.trusted_keys:
            keys = ", ".join(k.label for k in self.trusted_keys)
            parts.append(f"a signature by {keys} (from {self.source})")
        if self.expect_sha256:
            parts.append(f"sha256 {self.expect_sha256[:16]}…")
        return " and ".join(parts) or "nothing (no trust policy)"


NO_POLICY = TrustPolicy()


def check_sha256_text(value: str) -> str:
    """``value`` as 64 lowercase hex digits, or :class:`UsageError` saying what works."""
    text = value.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise UsageError(
            f"expected sha256 {shown(value)}: give 64 hex digits (`medfuse inspect BUNDLE` "
            "prints the bundle's sha256)"
        )
    return text


# -- where a policy comes from ------------------------------------------------------------------


def _expiry(value: Any, where: str) -> _dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{where}: expected an ISO date such as \"2027-07-01\", got {shown(value)}")
    try:
        if len(value) == 10:
            return _dt.datetime.fromisoformat(value).replace(tzinfo=_dt.timezone.utc)
        moment = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"{where}: {shown(value)} is not an ISO date or time (e.g. \"2027-07-01\")"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)


def load_trust_config(path: str | os.PathLike[str]) -> TrustPolicy:
    """Read a trust config file (format in the module docstring).

    Raises
    ------
    UsageError
        The file is unreadable, malformed, lists no keys, or a key file cannot be loaded; the
        message names the file and the field.
    """
    p = Path(path)
    data = read_bounded(p, SMALL_DOCUMENT_LIMITS.max_bytes, what=f"trust config {p}", error=UsageError)
    doc = load_json(data, source=f"trust config {p}", error=UsageError, limits=SMALL_DOCUMENT_LIMITS)
    if not isinstance(doc, dict):
        raise UsageError(f"trust config {p}: expected a JSON object with \"trusted_keys\"")
    unknown = sorted(set(doc) - {"trusted_keys", "locked"})
    if unknown:
        raise UsageError(
            f"trust config {p}: unknown field(s) {', '.join(shown(k) for k in unknown)}; "
            "known: trusted_keys, locked"
        )
    entries = doc.get("trusted_keys")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"trust config {p}: \"trusted_keys\" must be a non-empty list")
    locked = doc.get("locked", False)
    if not isinstance(locked, bool):
        raise UsageError(f"trust config {p}: \"locked\" must be true or false")
    keys = []
    for i, entry in enumerate(entries):
        where = f"trust config {p}: trusted_keys[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise UsageError(f"{where}: expected {{\"file\": PUBLIC_KEY_FILE, ...}}")
        name = entry.get("name", "")
        if not isinstance(name, str) or len(name) > 80:
            raise UsageError(f"{where}.name: expected a short text")
        keys.append(
            TrustedKey(
                load_public_key(p.parent / entry["file"]),
                name=name,
                expires=_expiry(entry.get("expires"), f"{where}.expires"),
            )
        )
    return TrustPolicy(trusted_keys=tuple(keys), source=str(p), locked=locked)


def _config_policy() -> TrustPolicy | None:
    env = os.environ.get(CONFIG_ENV)
    path = DEFAULT_CONFIG if env is None else (Path(env) if env else None)
    if path is None or not path.exists():
        if env:
            raise UsageError(f"{CONFIG_ENV}={env}: no such trust config file")
        return None
    return load_trust_config(path)


def _env_keys() -> tuple[TrustedKey, ...]:
    value = os.environ.get(KEYS_ENV, "")
    return tuple(TrustedKey(load_public_key(f)) for f in value.split(os.pathsep) if f.strip())


def resolve_policy(
    trusted_keys: Sequence[str | os.PathLike[str]] | None = None,
    *,
    expect_sha256: str | None = None,
) -> TrustPolicy:
    """The policy in force: explicit keys, else ``$MEDFUSE_TRUSTED_KEYS``, else the config file.

    Parameters
    ----------
    trusted_keys:
        Public key files given by the caller (``--trusted-key``); ``None`` or empty: none.
    expect_sha256:
        A pinned bundle digest, added to whatever keys apply.

    Raises
    ------
    UsageError
        A key or config file cannot be read, or the config is ``locked`` and another source
        names keys.
    """
    config = _config_policy()
    explicit = tuple(TrustedKey(load_public_key(f)) for f in trusted_keys or ())
    env_keys = _env_keys()
    if config is not None and config.locked and (explicit or env_keys):
        other = "--trusted-key" if explicit else f"${KEYS_ENV}"
        raise UsageError(
            f"this device's trust config {config.source} is locked: {other} may not replace "
            "its keys; ask the device maker, or remove the option"
        )
    if explicit:
        policy = TrustPolicy(trusted_keys=explicit, source="--trusted-key")
    elif env_keys:
        policy = TrustPolicy(trusted_keys=env_keys, source=f"${KEYS_ENV}")
    else:
        policy = config or NO_POLICY
    return replace(policy, expect_sha256=expect_sha256) if expect_sha256 else policy


_installed: TrustPolicy | None = None
_installed_lock = threading.Lock()


def active_policy() -> TrustPolicy:
    """The policy :func:`~medfuse.bundle.open_bundle` applies when given none: the one
    installed by :func:`use_trust_policy`, else :func:`resolve_policy` (environment, config)."""
    with _installed_lock:
        installed = _installed
    return installed if installed is not None else resolve_policy()


@contextmanager
def use_trust_policy(policy: TrustPolicy | None) -> Iterator[None]:
    """Make ``policy`` the one every bundle opened inside the block must satisfy (every thread).

    ``None`` leaves the policy in force unchanged. The CLI installs the policy built from
    ``--trusted-key`` / ``--expect-sha256`` this way for the whole command.
    """
    global _installed
    if policy is None:
        yield
        return
    with _installed_lock:
        previous, _installed = _installed, policy
    try:
        yield
    finally:
        with _installed_lock:
            _installed = previous


# -- the check ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureState:
    """What a bundle's ``manifest.json.sig`` says about its manifest.

    ``status``: ``unsigned`` (no signature file), ``signed`` (every signature verifies against
    the manifest's bytes with the key it names) or ``invalid`` (a signature file that is
    malformed, or a signature that does not verify). ``trusted`` is ``None`` without a policy
    that requires a signature, else whether a trusted key signed it (always ``True`` on an
    opened bundle: the policy refuses the rest).
    """

    status: Literal["unsigned", "signed", "invalid"]
    digest: str
    key_ids: tuple[str, ...] = ()
    signed_at: tuple[str, ...] = ()
    trusted: bool | None = None
    trusted_by: str = ""
    detail: str = ""

    def describe(self) -> str:
        """One line for ``inspect``."""
        if self.status == "unsigned":
            return "unsigned"
        if self.status == "invalid":
            return f"INVALID signature: {self.detail}"
        who = ", ".join(f"{k} on {t}" for k, t in zip(self.key_ids, self.signed_at, strict=True))
        if self.trusted:
            return f"signed by {who}; trusted ({self.trusted_by})"
        return f"signed by {who}; signature valid, signer not checked (no trust policy)"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``inspect --json``)."""
        return {
            "status": self.status,
            "key_ids": list(self.key_ids),
            "signed_at": list(self.signed_at),
            "trusted": self.trusted,
            "detail": self.detail,
        }


def _verify_records(
    records: tuple[SignatureRecord, ...], digest: str
) -> tuple[list[SignatureRecord], list[str]]:
    good: list[SignatureRecord] = []
    problems: list[str] = []
    for r in records:
        if r.manifest_sha256 != digest:
            problems.append(
                f"the signature by key {r.key_id} was made for other bytes (manifest sha256 "
                f"{r.manifest_sha256[:12]}…, this one is {digest[:12]}…): the manifest changed "
                "after signing"
            )
        elif not PublicKey(r.public_key).verifies(r.signature, r.statement()):
            problems.append(f"the signature by key {r.key_id} does not verify (damaged or forged)")
        else:
            good.append(r)
    return good, problems


def _refuse(label: str, policy: TrustPolicy, why: str, fix: str) -> UntrustedBundleError:
    return UntrustedBundleError(
        f"bundle {label} refused by the trust policy ({policy.source}): {why}; {fix}"
    )


def check_trust(
    manifest: bytes,
    signature: bytes | None,
    policy: TrustPolicy,
    *,
    label: str,
    archive_sha256: str | None = None,
    now: _dt.datetime | None = None,
) -> SignatureState:
    """Check a bundle's manifest bytes and signature file against ``policy``.

    Parameters
    ----------
    manifest:
        The exact bytes of ``manifest.json`` (nothing else of the bundle is needed).
    signature:
        The bytes of ``manifest.json.sig``, or ``None`` when there is none.
    policy:
        The policy to satisfy (:data:`NO_POLICY`: only report).
    label:
        The bundle's name for messages.
    archive_sha256:
        For a zip, the zip file's sha256 (also accepted by ``expect_sha256``).
    now:
        The time keys' expiry is checked against (default: now, UTC).

    Returns
    -------
    SignatureState
        The signature's state.

    Raises
    ------
    UntrustedBundleError
        The policy refuses the bundle: the digest differs from the pinned one, it is unsigned,
        signed only by keys the policy does not trust or trusted only until an earlier time, or
        its signatures do not verify. The message says which, and what would work.
    """
    digest = hashlib.sha256(manifest).hexdigest()
    if policy.expect_sha256 is not None and policy.expect_sha256 not in (digest, archive_sha256):
        found = f"{digest[:16]}…" + (f" (zip file {archive_sha256[:16]}…)" if archive_sha256 else "")
        raise UntrustedBundleError(
            f"bundle {label}: its sha256 is {found}, not the expected {policy.expect_sha256[:16]}…; "
            "this is not the bundle that was pinned (check where it came from, or update the pin)"
        )
    state, records = _state(signature, digest, label)
    if not policy.requires_signature:
        if state.status == "invalid":
            logger.warning("bundle %s: %s", label, state.detail)
        return state
    keys = ", ".join(t.label for t in policy.trusted_keys)
    sign_hint = f"sign it with `medfuse sign {label} --key KEY` using a key the policy trusts"
    if state.status == "unsigned":
        raise _refuse(label, policy, "it is unsigned", f"trusted keys: {keys}; {sign_hint}")
    if state.status == "invalid":
        raise _refuse(label, policy, state.detail, f"get a correctly signed copy, or {sign_hint}")
    moment = now or _dt.datetime.now(_dt.timezone.utc)
    trusted = {t.key.key_id: t for t in policy.trusted_keys}
    expired: list[str] = []
    for r in records:
        t = trusted.get(r.key_id)
        if t is None or t.key.raw != r.public_key:
            continue
        if t.expires is not None and moment >= t.expires:
            expired.append(f"{t.label} was trusted until {t.expires:%Y-%m-%d %H:%M} UTC")
            continue
        return replace(state, trusted=True, trusted_by=f"key {t.label} from {policy.source}")
    if expired:
        raise _refuse(label, policy, "; ".join(expired), "re-sign it with a current key")
    signers = ", ".join(r.key_id for r in records)
    raise _refuse(
        label,
        policy,
        f"it is signed by key {signers}, which the policy does not trust",
        f"trusted keys: {keys}; add the signer's public key with --trusted-key if you trust it",
    )


def _state(
    signature: bytes | None, digest: str, label: str
) -> tuple[SignatureState, list[SignatureRecord]]:
    """The signature file's state, and its records that verify."""
    if signature is None:
        return SignatureState("unsigned", digest), []
    try:
        records = parse_signatures(signature, source=f"bundle {label}: {SIGNATURE_NAME}")
    except UntrustedBundleError as exc:
        return SignatureState("invalid", digest, detail=str(exc)), []
    good, problems = _verify_records(records, digest)
    ids = tuple(r.key_id for r in records)
    if problems:
        return SignatureState("invalid", digest, key_ids=ids, detail="; ".join(problems)), good
    state = SignatureState(
        "signed", digest, key_ids=ids, signed_at=tuple(r.signed_at for r in good)
    )
    return state, good
