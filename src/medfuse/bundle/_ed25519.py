"""The only module that touches ``cryptography``: Ed25519 keys in and out of standard formats.

:mod:`medfuse.bundle.signing` imports it on first use (through ``_crypto()``), so importing the
bundle package costs nothing until a signature is made or checked. Keys cross this boundary as
raw bytes (public) or as the library's private-key object; errors as ``ValueError`` with a
short reason, which the caller turns into a message naming the file.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "Ed25519PrivateKey",
    "generate",
    "private_from_file",
    "public_from_file",
    "public_pem",
    "raw_public",
    "verify",
]


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a key's public half."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify(raw: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is the Ed25519 signature of ``message`` by public key ``raw``."""
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def public_pem(raw: bytes) -> bytes:
    """A raw public key as PEM (SubjectPublicKeyInfo)."""
    return Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_from_file(data: bytes) -> bytes:
    """The raw key of a PEM or OpenSSH (``ssh-ed25519 …``) public key file.

    Raises
    ------
    ValueError
        Not such a file, or not an Ed25519 key (the message says which).
    """
    try:
        if data.lstrip().startswith(b"ssh-"):
            key: object = serialization.load_ssh_public_key(data)
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PEM or OpenSSH public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 key (medfuse signs with Ed25519)")
    return raw_public(key)


def private_from_file(data: bytes, passphrase: bytes | None) -> Ed25519PrivateKey:
    """The key of a PEM (PKCS#8) or OpenSSH private key file, decrypted with ``passphrase``.

    Raises
    ------
    ValueError
        Not such a file, the wrong passphrase, a missing one, or not an Ed25519 key.
    """
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key: object = serialization.load_ssh_private_key(data, passphrase)
        else:
            key = serialization.load_pem_private_key(data, passphrase)
    except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain key
        raise ValueError(f"{exc}") from exc
    except ValueError as exc:
        raise ValueError(
            "cannot load it (wrong passphrase, or not a PEM / OpenSSH private key)"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 key (medfuse signs with Ed25519)")
    return key


def generate(passphrase: bytes | None) -> tuple[Ed25519PrivateKey, bytes]:
    """A new key and its PEM (PKCS#8, encrypted when ``passphrase`` is given)."""
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    return key, pem
