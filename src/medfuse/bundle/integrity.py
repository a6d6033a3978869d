"""sha256 of bundle artifacts, streamed, checked at most once per process per unchanged file.

A file that passed its check is remembered by ``(resolved path, mtime_ns, size, expected
sha256)``; touching, truncating or replacing it invalidates the entry, so a file damaged after a
successful check is caught the next time it is asked for.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path

from medfuse.errors import IntegrityError

__all__ = ["DAMAGED_HINT", "check_sha256", "clear_verified_cache", "sha256_file"]

logger = logging.getLogger(__name__)

DAMAGED_HINT = "the bundle is damaged; re-copy it or re-export"
_CHUNK = 1 << 20

_verified: set[tuple[str, int, int, str]] = set()
_lock = threading.Lock()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes as lowercase hex, read in 1 MiB chunks.

    Parameters
    ----------
    path:
        The file to hash.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(path: Path, expected: str) -> tuple[str, int, int, str]:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size, expected)


def check_sha256(path: Path, expected: str, *, name: str, where: str = "") -> None:
    """Raise :class:`IntegrityError` unless ``path`` exists and hashes to ``expected``.

    Parameters
    ----------
    path:
        The file on disk.
    expected:
        The sha256 recorded in the manifest.
    name:
        The file's name relative to the bundle, used in messages (never an absolute path).
    where:
        What holds the file, e.g. ``"bundle reference.medfuse"``, prefixed to messages.
    """
    prefix = f"{where}: " if where else ""
    if not path.is_file():
        raise IntegrityError(
            f"{prefix}{name} is listed in the manifest but missing; {DAMAGED_HINT}"
        )
    key = _stat_key(path, expected)
    with _lock:
        if key in _verified:
            return
    found = sha256_file(path)
    if found != expected:
        raise IntegrityError(
            f"{prefix}{name} does not match the manifest (sha256 expected {expected[:12]}…, "
            f"found {found[:12]}…); {DAMAGED_HINT}"
        )
    with _lock:
        _verified.add(key)
    logger.debug("verified %s (%d bytes)", name, key[2])


def clear_verified_cache() -> None:
    """Forget every file checked so far in this process (the next use re-hashes)."""
    with _lock:
        _verified.clear()
