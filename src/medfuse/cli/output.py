"""Where a verb's ``--json`` / ``--markdown`` text goes: a file, or stdout for ``-``.

Every verb that writes a result file goes through :func:`write_output`, so ``-`` means stdout
everywhere (``medfuse bench --json - | jq``), and :func:`to_stdout` tells a verb that its
human table must then stay off stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["STDOUT", "to_stdout", "write_output"]

STDOUT = "-"


def to_stdout(path: str | Path | None) -> bool:
    """Whether ``path`` is ``-`` (stdout)."""
    return path is not None and str(path) == STDOUT


def write_output(path: str | Path, text: str, flag: str = "") -> None:
    """Write ``text`` to ``path`` (parent folders created), or to stdout when it is ``-``.

    An OS error (read-only folder, full disk) is a :class:`~medfuse.errors.FileAccessError`
    naming the path and ``flag``.
    """
    from medfuse._paths import writing

    if to_stdout(path):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
        return
    out = Path(path)
    with writing(out, flag=flag):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
