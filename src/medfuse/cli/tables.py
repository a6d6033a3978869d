"""One plain-text table renderer for every verb: fits the terminal width, never cuts a key.

:func:`render_table` lays out :class:`Column` s and rows of strings within ``width`` columns
(default: the terminal's, ``$COLUMNS`` honoured, 80 when unknown). When the natural layout is
too wide it tries, in order:

1. **abbreviate** headers that have a ``short`` form, and print a legend under the table
   (``p99 = p99 latency ms``);
2. **tighten** the gap between columns from two spaces to one;
3. **wrap** cells of columns that prefer it (``wrap=True``) down to a comfortable width;
4. **drop** optional columns (``drop`` > 0, highest first) and say which under the table
   (``not shown at this width: ... (see --json)``);
5. **wrap** further: ``wrap`` columns, then any column that is not a key, widest first (so
   the wrapped columns end up balanced), at word boundaries where possible.

Columns marked ``key=True`` hold what a user types back (device keys, variant names, backend
names): they are never wrapped, cut or dropped. Every line of the result is at most ``width``
characters unless the key columns alone are wider. No colour and no box drawing, so what a
test reads is what a terminal shows.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Column", "render_table", "terminal_width"]

_GAP = "  "
_MIN_WRAP = 6
_COMFORT = 24


@dataclass(frozen=True)
class Column:
    """One column: its header, how it may shrink, and how it aligns.

    Parameters
    ----------
    header:
        Full header text.
    short:
        Abbreviated header used when the table is too wide (explained in the legend).
    meaning:
        Legend text for the abbreviation (default: ``header``).
    right:
        Right-align (numbers).
    key:
        Values a user types back: never wrapped, cut or dropped.
    drop:
        0: always shown; otherwise columns with the highest ``drop`` go first when narrow.
    wrap:
        Prefer wrapping this column's cells over the others'.
    """

    header: str
    short: str | None = None
    meaning: str | None = None
    right: bool = False
    key: bool = False
    drop: int = 0
    wrap: bool = False


def terminal_width(default: int = 80) -> int:
    """The terminal's width (``$COLUMNS`` first), at least 40."""
    return max(40, shutil.get_terminal_size((default, 24)).columns)


def _natural(col: Column, header: str, cells: Sequence[str]) -> int:
    return max([len(header), *(len(c) for c in cells)])


def _min_width(header: str, cells: Sequence[str], col: Column) -> int:
    if col.key:
        return max([len(header), *(len(c) for c in cells)])
    longest_word = max([0, *(len(w) for c in cells for w in c.split())])
    head_word = max([0, *(len(w) for w in header.split())])
    return max(_MIN_WRAP, min(longest_word, 12), head_word)


def _wrap(text: str, width: int) -> list[str]:
    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def render_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    title: str | None = None,
) -> str:
    """Lay out ``rows`` under ``columns`` within ``width`` characters; see the module doc.

    Returns the table as text ending in a newline: title, header, rule, rows, then the
    legend and the list of dropped columns when there are any.
    """
    limit = width if width is not None else terminal_width()
    cols = list(range(len(columns)))
    headers = [c.header for c in columns]
    cells = [[str(r[i]) for r in rows] for i in range(len(columns))]

    gap = _GAP

    def total(idx: Sequence[int], widths: dict[int, int]) -> int:
        return sum(widths[i] for i in idx) + len(gap) * max(0, len(idx) - 1)

    widths = {i: _natural(columns[i], headers[i], cells[i]) for i in cols}
    legend: list[str] = []
    if total(cols, widths) > limit:
        for i in cols:
            c = columns[i]
            if c.short and c.short != c.header:
                headers[i] = c.short
                legend.append(f"{c.short} = {c.meaning or c.header}")
                widths[i] = _natural(c, headers[i], cells[i])
    if total(cols, widths) > limit:
        gap = " "
    mins = {i: _min_width(headers[i], cells[i], columns[i]) for i in cols}

    def shrink(which: Sequence[int], floor: dict[int, int]) -> None:
        """Narrow ``which`` towards ``floor``, widest first, so they end up balanced."""
        while (excess := total(cols, widths) - limit) > 0:
            live = [i for i in which if i in cols and widths[i] > floor[i]]
            if not live:
                return
            live.sort(key=lambda j: -widths[j])
            widest = widths[live[0]]
            runner_up = max([floor[live[0]], *(widths[j] for j in live[1:2])])
            step = max(1, min(excess, widest - runner_up))
            widths[live[0]] = widest - step

    wrap_cols = [i for i in cols if columns[i].wrap and not columns[i].key]
    other_cols = [i for i in cols if not columns[i].key]
    shrink(wrap_cols, {i: max(mins[i], min(widths[i], _COMFORT)) for i in cols})
    dropped: list[str] = []
    for i in sorted((i for i in cols if columns[i].drop > 0), key=lambda i: -columns[i].drop):
        if total(cols, widths) <= limit:
            break
        cols.remove(i)
        dropped.append(columns[i].header)
        if headers[i] != columns[i].header:
            legend = [line for line in legend if not line.startswith(f"{headers[i]} = ")]
    shrink(wrap_cols, mins)
    shrink(other_cols, mins)
    shrink(other_cols, {i: _MIN_WRAP for i in cols})

    def line(parts: Sequence[list[str]]) -> list[str]:
        height = max(len(p) for p in parts)
        out = []
        for k in range(height):
            segs = []
            for i, p in zip(cols, parts, strict=True):
                text = p[k] if k < len(p) else ""
                segs.append(text.rjust(widths[i]) if columns[i].right else text.ljust(widths[i]))
            out.append(gap.join(segs).rstrip())
        return out

    out: list[str] = []
    if title:
        out += _wrap(title, limit)
    out += line([_wrap(headers[i], widths[i]) for i in cols])
    out.append(gap.join("─" * widths[i] for i in cols))
    for r in range(len(rows)):
        out += line([_wrap(cells[i][r], widths[i]) for i in cols])
    if legend:
        out += _wrap("legend: " + "; ".join(legend), limit)
    if dropped:
        out += _wrap(f"not shown at this width: {', '.join(dropped)} (see --json)", limit)
    return "\n".join(out) + "\n"
