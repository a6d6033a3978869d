"""The one progress display of the CLI: a bar with count, elapsed time and ETA, on stderr.

:func:`progress_bar` yields ``update(done, total, detail="")``; verbs pass it (or a small
adapter) to the API's ``progress`` callbacks. The bar is drawn only when stderr is a terminal
and the verb is not printing ``--json`` (``quiet=True``): pipes, logs and machine-read output
stay clean. The bar appears at the first update, so a command that fails in its checks prints
only its error. The ETA is rich's estimate from the rate so far (shown once a step finished).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Update", "progress_bar", "progress_wanted", "staged_bars"]

Update = Callable[..., None]
"""``update(done, total, detail="")``."""


def progress_wanted(quiet: bool = False) -> bool:
    """Whether to draw a bar: stderr is a terminal and the output is not machine-read."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress_bar(what: str, *, quiet: bool = False) -> Iterator[Update]:
    """A bar ``what ━━━━ 3/10 0:00:12 ETA 0:00:28 detail`` on stderr; yields ``update``."""
    if not progress_wanted(quiet):
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        console=Console(stderr=True),
        transient=False,
    )
    task: list[Any] = []

    def update(done: int, total: int | None, detail: str = "") -> None:
        if not task:
            progress.start()
            task.append(progress.add_task(what, total=total, detail=detail))
        progress.update(task[0], total=total, completed=done, detail=detail)

    try:
        yield update
    finally:
        if task:
            progress.stop()


@contextmanager
def staged_bars(*, quiet: bool = False) -> Iterator[Callable[..., None]]:
    """One bar per stage: yields ``update(stage, done, total, detail="")``; a new ``stage``
    name closes the previous bar and opens the next (e.g. preprocessing, then epochs)."""
    from contextlib import ExitStack

    current: dict[str, Any] = {"stage": None, "update": _ignore}
    with ExitStack() as stack:

        def update(stage: str, done: int, total: int | None, detail: str = "") -> None:
            if stage != current["stage"]:
                stack.close()
                current["stage"] = stage
                current["update"] = stack.enter_context(progress_bar(stage, quiet=quiet))
            current["update"](done, total, detail)

        yield update


def _ignore(*_: Any, **__: Any) -> None:
    return None
