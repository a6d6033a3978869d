"""The one parser of batch-size lists (``"1,4,8"``), for the CLI and the API alike.

``medfuse build --batch``, ``bench --batch``, ``serve`` / ``export-triton --preferred-batch``
and :func:`medfuse.devices.plan.parse_batch_sizes` all use :func:`parse_batch_sizes`: whole
numbers of at least 1, separated by commas; the error names the option and the bad part.
"""

from __future__ import annotations

from medfuse.errors import UsageError

__all__ = ["parse_batch_sizes"]


def parse_batch_sizes(
    text: str | None, *, option: str = "--batch", allow_empty: bool = False
) -> tuple[int, ...]:
    """``"1, 4,8"`` → ``(1, 4, 8)``.

    Raises
    ------
    UsageError
        A part that is not a whole number of at least 1 (``0``, ``-2``, ``x``), or an empty
        list unless ``allow_empty`` (then ``()``).
    """
    parts = [p.strip() for p in (text or "").split(",")]
    if not any(parts):
        if allow_empty:
            return ()
        raise UsageError(f"{option}: give batch sizes, e.g. 1,4,8")
    out: list[int] = []
    for part in parts:
        if not part.isdigit() or int(part) < 1:
            raise UsageError(
                f"{option} {text!r}: {part!r} is not a whole number of at least 1; e.g. 1,4,8"
            )
        out.append(int(part))
    return tuple(out)
