"""Ed25519 keys and detached bundle signatures (``manifest.json.sig``).

The manifest lists the sha256 of every artifact, and every artifact is hash-checked before use,
so signing the manifest's bytes signs the whole bundle. A signature does not sign the manifest
directly but a short *statement* that names the algorithm, the key, the signing time and the
manifest's sha256 (as Sigstore and in-toto sign a statement about a subject digest)::

    medfuse-signature/1
    algorithm=ed25519
    key_id=3f1c2a9b0d4e5f60
    signed_at=2026-12-04T18:29:00Z
    manifest_sha256=<64 hex digits>

so the signing time and key id cannot be altered without breaking the signature, and a
signature made for one purpose can never be replayed as another. ``manifest.json.sig`` is JSON:
``{"format": "medfuse-signature/1", "signatures": [record, ...]}``; a record carries the fields
above, the signer's public key (so ``inspect`` can check the signature without a trust policy)
and the 64-byte signature, both base64. Several publishers may sign one manifest.

Keys are files in standard formats (PEM: PKCS#8 private, SubjectPublicKeyInfo public; OpenSSH
``ssh-ed25519`` keys are read too). A key's id is the first 16 hex digits of the sha256 of its
32 raw public bytes; it is for lookup and display only — a signature is always checked against
the full trusted key. The ``cryptography`` package does the cryptography; it is imported on
first use.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from medfuse.bundle.limits import SMALL_DOCUMENT_LIMITS, load_json, read_bounded, shown
from medfuse.errors import MissingDependencyError, UntrustedBundleError, UsageError

if TYPE_CHECKING:
    from medfuse.bundle._ed25519 import Ed25519PrivateKey

__all__ = [
    "PASSPHRASE_ENV",
    "SIGNATURE_FORMAT",
    "SIGNATURE_NAME",
    "KeyFiles",
    "PublicKey",
    "SignatureRecord",
    "SigningKey",
    "generate_key",
    "load_public_key",
    "load_signing_key",
    "parse_signatures",
    "sign_manifest",
    "signatures_document",
]

logger = logging.getLogger(__name__)

SIGNATURE_NAME = "manifest.json.sig"
SIGNATURE_FORMAT = "medfuse-signature/1"
PASSPHRASE_ENV = "MEDFUSE_KEY_PASSPHRASE"
ALGORITHM = "ed25519"

_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_MAX_KEY_FILE = 16 << 10


def _crypto() -> ModuleType:
    """:mod:`medfuse.bundle._ed25519`, imported on first use (it imports ``cryptography``)."""
    try:
        from medfuse.bundle import _ed25519
    except ImportError as exc:
        raise MissingDependencyError(
            "the 'cryptography' package is needed for bundle signatures but is not installed; "
            "it is a dependency of medfuse: pip install 'cryptography>=42' (or reinstall medfuse)"
        ) from exc
    return _ed25519


def key_id_of(raw_public: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key: 16 hex digits of its sha256."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key: its 32 raw bytes, its id, and where it came from (for messages)."""

    raw: bytes
    origin: str = ""

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise UsageError(f"{self.origin or 'public key'}: an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> str:
        """16 hex digits identifying the key."""
        return key_id_of(self.raw)

    def verifies(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of ``message``."""
        return bool(_crypto().verify(self.raw, signature, message))

    def pem(self) -> bytes:
        """The key as PEM (SubjectPublicKeyInfo), the format ``medfuse keygen`` writes."""
        return bytes(_crypto().public_pem(self.raw))


@dataclass(frozen=True)
class SigningKey:
    """A loaded Ed25519 private key and its public half."""

    private: Ed25519PrivateKey
    public: PublicKey

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self.private.sign(message)


@dataclass(frozen=True)
class KeyFiles:
    """What :func:`generate_key` wrote: the private and public key files and the key id."""

    private: Path
    public: Path
    key_id: str


@dataclass(frozen=True)
class SignatureRecord:
    """One signature of a manifest, as stored in ``manifest.json.sig``."""

    key_id: str
    public_key: bytes
    signed_at: str
    manifest_sha256: str
    signature: bytes
    algorithm: str = ALGORITHM

    def statement(self) -> bytes:
        """The bytes that were signed (see the module docstring)."""
        return (
            f"{SIGNATURE_FORMAT}\nalgorithm={self.algorithm}\nkey_id={self.key_id}\n"
            f"signed_at={self.signed_at}\nmanifest_sha256={self.manifest_sha256}\n"
        ).encode("ascii")

    def to_dict(self) -> dict[str, str]:
        """The JSON form."""
        return {
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "signed_at": self.signed_at,
            "manifest_sha256": self.manifest_sha256,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> SignatureRecord:
        """Parse one record, strictly (every field's format is checked).

        Raises
        ------
        UntrustedBundleError
            A field is missing or malformed.
        """
        if not isinstance(d, dict):
            raise UntrustedBundleError(f"{where}: expected an object, got {shown(d)}")

        def text(key: str, pattern: re.Pattern[str] | None = None) -> str:
            value = d.get(key)
            if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
                raise UntrustedBundleError(f"{where}.{key}: malformed value {shown(value)}")
            return value

        def b64(key: str, size: int) -> bytes:
            try:
                raw = base64.b64decode(text(key), validate=True)
            except binascii.Error:
                raw = b""
            if len(raw) != size:
                raise UntrustedBundleError(f"{where}.{key}: not {size} bytes of base64")
            return raw

        algorithm = text("algorithm")
        if algorithm != ALGORITHM:
            raise UntrustedBundleError(
                f"{where}.algorithm: {shown(algorithm)} is not supported (only {ALGORITHM!r})"
            )
        record = cls(
            key_id=text("key_id", _KEY_ID_RE),
            public_key=b64("public_key", 32),
            signed_at=text("signed_at", _TIME_RE),
            manifest_sha256=text("manifest_sha256", _SHA256_RE),
            signature=b64("signature", 64),
        )
        if key_id_of(record.public_key) != record.key_id:
            raise UntrustedBundleError(f"{where}.key_id: does not belong to its public_key")
        return record


def parse_signatures(data: bytes, *, source: str) -> tuple[SignatureRecord, ...]:
    """Parse the bytes of a ``manifest.json.sig`` (bounded, strict).

    Raises
    ------
    UntrustedBundleError
        Not a medfuse signature file, or a record is malformed.
    """
    doc = load_json(data, source=source, error=UntrustedBundleError, limits=SMALL_DOCUMENT_LIMITS)
    if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
        raise UntrustedBundleError(
            f"{source}: not a medfuse signature file (expected \"format\": "
            f"\"{SIGNATURE_FORMAT}\"); re-sign the bundle with `medfuse sign`"
        )
    records = doc.get("signatures")
    if not isinstance(records, list) or not records:
        raise UntrustedBundleError(f"{source}: holds no signatures; re-sign the bundle")
    return tuple(
        SignatureRecord.from_dict(r, f"{source}: signatures[{i}]") for i, r in enumerate(records)
    )


def signatures_document(records: Iterable[SignatureRecord]) -> str:
    """The text of a ``manifest.json.sig`` holding ``records``."""
    import json

    body = {"format": SIGNATURE_FORMAT, "signatures": [r.to_dict() for r in records]}
    return json.dumps(body, indent=2) + "\n"


def sign_manifest(manifest: bytes, key: SigningKey, *, signed_at: str | None = None) -> SignatureRecord:
    """Sign the bytes of a ``manifest.json``.

    Parameters
    ----------
    manifest:
        The manifest's exact bytes.
    key:
        The publisher's signing key.
    signed_at:
        UTC time ``YYYY-MM-DDTHH:MM:SSZ`` (default: now).

    Returns
    -------
    SignatureRecord
        The record to store in ``manifest.json.sig``.
    """
    when = signed_at or _utc_now()
    if not _TIME_RE.match(when):
        raise UsageError(f"signed_at {shown(when)}: use UTC as YYYY-MM-DDTHH:MM:SSZ")
    unsigned = SignatureRecord(
        key_id=key.public.key_id,
        public_key=key.public.raw,
        signed_at=when,
        manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        signature=bytes(64),
    )
    return SignatureRecord(
        key_id=unsigned.key_id,
        public_key=unsigned.public_key,
        signed_at=unsigned.signed_at,
        manifest_sha256=unsigned.manifest_sha256,
        signature=key.sign(unsigned.statement()),
    )


# -- key files ---------------------------------------------------------------------------------


def _read_key_file(path: Path, what: str) -> bytes:
    return read_bounded(path, _MAX_KEY_FILE, what=f"{what} {path}", error=UsageError)


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read an Ed25519 public key file (PEM SubjectPublicKeyInfo or OpenSSH ``ssh-ed25519``).

    Raises
    ------
    UsageError
        The file is unreadable or holds no Ed25519 public key (the message says which formats
        work).
    """
    p = Path(path).expanduser()
    data = _read_key_file(p, "public key")
    try:
        raw = _crypto().public_from_file(data)
    except ValueError as exc:
        raise UsageError(f"public key {p}: {exc}; give the .pub file `medfuse keygen` wrote") from exc
    return PublicKey(raw, origin=str(p))


def _passphrase(given: bytes | None) -> bytes | None:
    if given is None and (env := os.environ.get(PASSPHRASE_ENV)):
        return env.encode("utf-8")
    return given


def load_signing_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> SigningKey:
    """Read an Ed25519 private key file (PEM PKCS#8, or OpenSSH), decrypting it if needed.

    Parameters
    ----------
    path:
        The private key file.
    passphrase:
        For an encrypted key; default: ``$MEDFUSE_KEY_PASSPHRASE`` when set.

    Raises
    ------
    UsageError
        Unreadable, not an Ed25519 private key, or the passphrase is missing or wrong.
    """
    p = Path(path).expanduser()
    data = _read_key_file(p, "signing key")
    crypto = _crypto()
    try:
        key = crypto.private_from_file(data, _passphrase(passphrase))
    except ValueError as exc:
        raise UsageError(
            f"signing key {p}: {exc}; give the .key file `medfuse keygen` wrote, with "
            f"{PASSPHRASE_ENV} set to its passphrase if it has one"
        ) from exc
    return SigningKey(key, PublicKey(crypto.raw_public(key), origin=str(p)))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def generate_key(prefix: str | os.PathLike[str], *, passphrase: bytes | None = None) -> KeyFiles:
    """Create an Ed25519 key pair: ``PREFIX.key`` (private, mode 0600) and ``PREFIX.pub``.

    Parameters
    ----------
    prefix:
        Path without suffix, e.g. ``keys/acme-release``.
    passphrase:
        Encrypt the private key with it (default: ``$MEDFUSE_KEY_PASSPHRASE`` when set,
        otherwise the key is stored unencrypted — keep it offline).

    Raises
    ------
    UsageError
        One of the two files exists already (keys are never overwritten) or cannot be written.
    """
    base = Path(prefix).expanduser()
    private, public = base.with_name(base.name + ".key"), base.with_name(base.name + ".pub")
    for p in (private, public):
        if p.exists():
            raise UsageError(f"{p} exists already; keys are never overwritten — choose another name")
    crypto = _crypto()
    key, private_pem = crypto.generate(_passphrase(passphrase))
    public_key = PublicKey(crypto.raw_public(key), origin=str(public))
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        _write_new(private, private_pem, 0o600)
        try:
            _write_new(public, public_key.pem(), 0o644)
        except OSError:
            private.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write the key pair {base}.key/.pub ({exc.strerror})") from exc
    logger.info("generated Ed25519 key %s", public_key.key_id)
    return KeyFiles(private, public, public_key.key_id)
