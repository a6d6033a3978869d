"""Pseudonymous study keys: HMAC-SHA256 of a UID with a per-deployment secret.

Results, labels and logs are keyed by :func:`study_key`, never by a raw UID or an unkeyed hash
of one (UIDs and patient IDs have small, guessable value spaces). The secret stays outside the
results; :func:`load_or_create_secret` keeps it in a file readable by its owner only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from medfuse._paths import check_secret_file, writing
from medfuse.errors import UsageError

__all__ = ["KEY_HEX_CHARS", "key_fingerprint", "load_or_create_secret", "study_key"]

KEY_HEX_CHARS = 32  # 128 bits of the HMAC: collision-free for any realistic study count
_MIN_SECRET_BYTES = 16


def study_key(uid: str, secret: bytes) -> str:
    """The pseudonymous key of a study: hex of the first 128 bits of HMAC-SHA256(secret, uid).

    The UID is keyed by its exact characters (surrounding whitespace, DICOM's padding, removed),
    encoded losslessly, so two different UIDs never share a key — also UIDs that differ only in
    non-ASCII characters (which a standard UID never holds, but a damaged header can). ASCII UIDs
    get the same keys as in every earlier version, so old results files resume.
    """
    if len(secret) < _MIN_SECRET_BYTES:
        raise UsageError(
            f"the study-key secret is {len(secret)} bytes; at least {_MIN_SECRET_BYTES} are needed"
        )
    data = uid.strip().encode("utf-8", "surrogatepass")
    return hmac.new(secret, data, hashlib.sha256).hexdigest()[:KEY_HEX_CHARS]


def key_fingerprint(secret: bytes) -> str:
    """A public fingerprint of the key secret: 16 hex of HMAC-SHA256(secret, a fixed label).

    Recorded with the results so a resume with another secret is noticed; it reveals nothing
    of the secret (and differs from every study key, whose messages are UIDs).
    """
    return hmac.new(secret, b"medfuse-key-fingerprint", hashlib.sha256).hexdigest()[:16]


def load_or_create_secret(path: Path, flag: str = "--key-secret-file") -> bytes:
    """Read the deployment secret from ``path``, creating it (32 random bytes, mode 0600) if absent.

    Raises
    ------
    FileAccessError
        ``path`` is a folder, unreadable, or cannot be created (read-only HOME).
    UsageError
        The file holds fewer than 16 bytes of secret.
    """
    path = check_secret_file(path, flag)
    if path.exists():
        with writing(path, "read the key secret", flag):
            data = path.read_bytes().strip()
        try:
            secret = bytes.fromhex(data.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            secret = data
        if len(secret) < _MIN_SECRET_BYTES:
            raise UsageError(
                f"the key secret file holds {len(secret)} bytes; at least {_MIN_SECRET_BYTES} "
                "are needed (delete it to have a new one generated)"
            )
        return secret
    secret = secrets.token_bytes(32)
    with writing(path, "create the key secret", flag):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret.hex() + "\n")
    return secret
