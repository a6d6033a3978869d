"""Who may write a results file, and with which key secret: its lock and its ``.meta`` sidecar.

- ``<results>.lock`` — an exclusive, non-blocking ``flock`` held for a whole run, with the
  holder's PID written into the file. A second writer fails at once with
  :class:`~medfuse.errors.ResultsInUseError` naming the PID (never waits). The lock file stays
  after the run (removing it would race with a process that just opened it); the lock is the
  ``flock``, not the file's existence, so a crashed run leaves nothing to clean up.
- ``<results>.meta`` — one JSON object, ``{"format": "medfuse-results-meta", "version": 1,
  "key_fingerprint": "…"}``: the fingerprint of the key secret the study keys were made with
  (:func:`~medfuse.runtime.results.keys.key_fingerprint`, never the secret). A resume with
  another secret would screen every study again under new keys; it is refused with
  :class:`~medfuse.errors.SecretMismatchError`.

The JSONL itself is unchanged (schema 2), so readers of earlier files need nothing new. A results
path that is not a regular file (``/dev/full``, a FIFO) gets neither sidecar: nothing there can
be resumed or corrupted by a second writer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from pathlib import Path
from types import TracebackType

from medfuse._paths import writing
from medfuse.errors import ResultsInUseError, SecretMismatchError

__all__ = [
    "META_FORMAT",
    "ResultsLock",
    "check_fingerprint",
    "lock_path",
    "meta_path",
    "read_fingerprint",
    "write_fingerprint",
]

META_FORMAT = "medfuse-results-meta"
_META_VERSION = 1
_MAX_META_BYTES = 4096


def lock_path(results: Path) -> Path:
    """The lock file of ``results``: ``<name>.lock`` beside it."""
    return results.with_name(results.name + ".lock")


def meta_path(results: Path) -> Path:
    """The metadata sidecar of ``results``: ``<name>.meta`` beside it."""
    return results.with_name(results.name + ".meta")


def _special(results: Path) -> bool:
    """Whether ``results`` exists and is not a regular file (a device, a FIFO)."""
    try:
        return not stat.S_ISREG(os.stat(results).st_mode)
    except OSError:
        return False


class ResultsLock:
    """An exclusive lock on a results file for one writer; a context manager.

    Parameters
    ----------
    results:
        The results JSONL; the lock is taken on ``<results>.lock``.
    """

    def __init__(self, results: Path) -> None:
        self.results = Path(results).absolute()
        self.path = lock_path(self.results)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (always true for a non-regular results path)."""
        return self._fd is not None or _special(self.results)

    def acquire(self) -> ResultsLock:
        """Take the lock or raise :class:`ResultsInUseError` at once; returns ``self``."""
        if self._fd is not None or _special(self.results):
            return self
        with writing(self.path, "create the lock file of", "--out"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ResultsInUseError(
                    f"cannot lock the results file {self.results} ({errno.errorcode.get(exc.errno or 0, 'error')} "
                    f"on {self.path}); its file system may not support locks: choose an --out on a "
                    "local disk"
                ) from exc
            who = f"PID {holder}" if holder else "a process whose PID is unknown"
            raise ResultsInUseError(
                f"the results file {self.results} is being written by another medfuse process "
                f"({who}, lock {self.path}); wait for it to finish or choose another --out"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError:
            pass  # the PID is a courtesy to the next process; the flock is the lock
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (idempotent); the lock file stays."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> ResultsLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0)
        return int(raw.decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def read_fingerprint(results: Path) -> str | None:
    """The key fingerprint recorded for ``results``; None when there is no readable sidecar."""
    path = meta_path(Path(results))
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read(_MAX_META_BYTES + 1)[:_MAX_META_BYTES])
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != META_FORMAT:
        return None
    value = data.get("key_fingerprint")
    return value if isinstance(value, str) else None


def write_fingerprint(results: Path, fingerprint: str) -> None:
    """Record ``fingerprint`` beside ``results`` (atomically; skipped for a non-regular path)."""
    results = Path(results)
    if _special(results):
        return
    path = meta_path(results)
    tmp = path.with_name(path.name + ".tmp")
    body = {"format": META_FORMAT, "version": _META_VERSION, "key_fingerprint": fingerprint}
    with writing(path, "write the metadata of", "--out"):
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(json.dumps(body) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def check_fingerprint(results: Path, fingerprint: str, *, has_records: bool) -> None:
    """Refuse to continue ``results`` with a key secret other than the one it was written with.

    Raises
    ------
    SecretMismatchError
        The file holds records and its sidecar names another fingerprint.
    """
    recorded = read_fingerprint(Path(results))
    if not has_records or recorded is None or recorded == fingerprint:
        return
    raise SecretMismatchError(
        f"the results file {Path(results).absolute()} was written with another study-key secret "
        f"(fingerprint {recorded}; this run's is {fingerprint}), so every study would get a new "
        "key and be screened twice; resume with the secret it was written with "
        "(--key-secret-file F or MEDFUSE_KEY_SECRET_FILE, as in that run) or write to a new --out"
    )
