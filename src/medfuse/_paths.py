"""One policy for the paths medfuse writes and the secrets it reads: check early, fail in one line.

Every verb checks its output paths, its secret and the optional packages a flag needs *before*
the long work (discovery, a session, a benchmark) with :func:`check_output_file`,
:func:`check_output_dir`, :func:`check_secret_file` and :func:`require_for_flag`. Whatever still
goes wrong while writing (a full disk, a folder removed meanwhile) is turned into the same
:class:`~medfuse.errors.FileAccessError` by :func:`writing` / :func:`access_error`.

A message names the full path (these are paths the user gave, never files of an input
folder), what failed, and what would work. The checks use ``os.access``; for root they are
weaker (root may write anywhere but a read-only file system), so :func:`writing` stays the
last word.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from medfuse.errors import FileAccessError, MissingDependencyError

__all__ = [
    "CACHE_ENV",
    "access_error",
    "cache_dir",
    "check_output_dir",
    "check_output_file",
    "check_secret_file",
    "preflight",
    "require_for_flag",
    "writing",
]

_HINTS = {
    errno.ENOSPC: "the file system is full; free space or choose another location",
    errno.EDQUOT: "the disk quota is used up; free space or choose another location",
    errno.EACCES: "permission denied; choose a location you can write to",
    errno.EPERM: "operation not permitted; choose a location you can write to",
    errno.EROFS: "the file system is read-only; choose a writable location",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EISDIR: "it is a folder; give a file name inside it",
    errno.ENOENT: "its folder does not exist; create it or choose another path",
    errno.ENAMETOOLONG: "the name is too long; choose a shorter path",
}


CACHE_ENV = "MEDFUSE_CACHE_DIR"


def cache_dir(part: str = "") -> Path:
    """medfuse's cache folder (``part`` below it): ``$MEDFUSE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/medfuse``, else ``~/.cache/medfuse`` — one rule for every cache (extracted
    bundles, calibration sets, the demo's studies)."""
    if env := os.environ.get(CACHE_ENV):
        root = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "medfuse"
    return root / part if part else root


def _label(flag: str) -> str:
    return f"{flag} " if flag else ""


def access_error(
    exc: OSError, path: str | os.PathLike[str], doing: str, flag: str = ""
) -> FileAccessError:
    """The :class:`FileAccessError` for ``exc`` raised while ``doing`` (e.g. "write") ``path``."""
    code = exc.errno if exc.errno is not None else 0
    name = errno.errorcode.get(code, type(exc).__name__)
    hint = _HINTS.get(code, exc.strerror or "the operating system refused it")
    err = FileAccessError(
        f"cannot {doing} {_label(flag)}{os.fspath(Path(path).absolute())} ({name}: {hint})"
    )
    err.__cause__ = exc
    return err


@contextmanager
def writing(path: str | os.PathLike[str], doing: str = "write", flag: str = "") -> Iterator[None]:
    """Turn any ``OSError`` inside the block into a :class:`FileAccessError` naming ``path``.

    An error on a file that is neither ``path``, below it, nor one of its temporary siblings
    (``.<name>.tmp-…``) is not blamed on ``path``: the block also reads its inputs (a model, a
    spec, studies) and may use the temporary folder. That file is not named (it may lie in a
    studies folder whose names carry patient data)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None and not _belongs(exc.filename, Path(path)):
            code = exc.errno if exc.errno is not None else 0
            name = errno.errorcode.get(code, type(exc).__name__)
            raise FileAccessError(
                f"cannot {doing} {_label(flag)}{os.fspath(Path(path).absolute())}: a file that "
                f"is not part of it failed ({name}: {exc.strerror or 'refused'}) — one of the "
                "inputs, or the temporary folder; check that the inputs are readable and that "
                "the temporary folder has space"
            ) from exc
        raise access_error(exc, path, doing, flag) from exc


def _belongs(filename: object, path: Path) -> bool:
    """Whether ``filename`` is ``path``, lies below it, or is one of its temporary siblings."""
    try:
        file = Path(os.fsdecode(filename)).absolute()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True  # not a path: blame the output, as before
    target = Path(path).absolute()
    if file == target or target in file.parents:
        return True
    return file.parent == target.parent and file.name.startswith(
        (f".{target.name}.", f"{target.name}.")
    )


def _refuse(flag: str, path: Path, why: str) -> FileAccessError:
    return FileAccessError(f"cannot write {_label(flag)}{path}: {why}")


def _writable_folder(folder: Path, flag: str, target: Path) -> None:
    """``folder`` (or its nearest existing ancestor, where it would be created) takes new files."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise _refuse(
            flag, target, f"{probe} is a file, not a folder; choose a path inside a folder"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise _refuse(
            flag,
            target,
            f"the folder {probe} is not writable for this user; choose a folder you can write to",
        )


def check_output_file(path: str | os.PathLike[str], flag: str = "") -> Path:
    """Check that a file can be written at ``path``; returns it absolute.

    Refused: a folder at ``path``; a parent that is a file; a parent (or, when it does not
    exist yet, the nearest existing ancestor) that is not writable; an existing file that is not
    writable. Character devices such as ``/dev/full`` pass: what they do on write is reported
    by :func:`writing`.
    """
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise _refuse(flag, target, "it is a folder; give a file name inside it")
    _writable_folder(target.parent, flag, target)
    if target.exists() and not os.access(target, os.W_OK):
        raise _refuse(flag, target, "the file is not writable for this user; choose another file")
    return target


def check_output_dir(path: str | os.PathLike[str], flag: str = "") -> Path:
    """Check that ``path`` is (or can be created as) a writable folder; returns it absolute."""
    target = Path(path).expanduser().absolute()
    if target.exists():
        if not target.is_dir():
            raise _refuse(flag, target, "it is a file; give a folder")
        if not os.access(target, os.W_OK | os.X_OK):
            raise _refuse(flag, target, "the folder is not writable for this user")
        return target
    _writable_folder(target.parent, flag, target)
    return target


def check_secret_file(path: str | os.PathLike[str], flag: str = "--key-secret-file") -> Path:
    """Check a key-secret file: readable when it exists, creatable (writable folder) when not."""
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise FileAccessError(
            f"{_label(flag)}{target} is a folder; give the secret file itself (a file of "
            "64 hex characters, created on first use when absent)"
        )
    if target.exists():
        if not os.access(target, os.R_OK):
            raise FileAccessError(
                f"cannot read {_label(flag)}{target}: not readable for this user; fix its "
                "permissions or give another --key-secret-file"
            )
        return target
    probe = target.parent
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise FileAccessError(
            f"the key secret {target} does not exist and cannot be created there ({probe} is "
            "not a writable folder); give --key-secret-file F or set MEDFUSE_KEY_SECRET_FILE "
            "to a secret in a writable place"
        )
    return target


def require_for_flag(module: str, flag: str, extra: str) -> None:
    """Check that ``module`` imports, else :class:`MissingDependencyError` naming the flag."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{flag} needs {module!r}, which is not installed; install it with "
            f"pip install 'medfuse[{extra}]' or leave out {flag}"
        ) from exc


PathArg = str | os.PathLike[str] | None


def preflight(
    *,
    files: Mapping[str, PathArg] | None = None,
    folders: Mapping[str, PathArg] | None = None,
    secret: PathArg = None,
    modules: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """Every check a verb needs before its long work, in one call.

    Parameters
    ----------
    files, folders:
        Flag (``"--json"``) → output file / folder; ``None`` values (flag not given) are skipped.
    secret:
        A key-secret file to read or create.
    modules:
        Flag → (module, pip extra) the flag needs, e.g. ``{"--plot": ("matplotlib", "plots")}``.
    """
    for flag, path in (files or {}).items():
        if path is not None:
            check_output_file(path, flag)
    for flag, path in (folders or {}).items():
        if path is not None:
            check_output_dir(path, flag)
    if secret is not None:
        check_secret_file(secret)
    for flag, (module, extra) in (modules or {}).items():
        require_for_flag(module, flag, extra)
