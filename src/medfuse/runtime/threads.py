"""The thread policy: how many read workers and inference threads a session uses, and bounds.

One policy for every place that builds a session or a pipeline (``Session``, the
``medfuse run`` screening pipeline, ``bench`` end to end, ``serve``, ``validate``), so the CLI
and the API size threads the same way.

- :func:`check_threads` bounds an explicit count: at least 1 (0 where a caller allows "inline,
  no threads"), at most ``max(4 × cores, 16)`` and never above :data:`HARD_MAX_THREADS`. Above
  that a :class:`~medfuse.errors.ThreadCountError` names the allowed range: ``--threads 99999``
  is refused before a single thread starts.
- :func:`plan_threads` sizes read workers and ONNX Runtime intra-op threads to the cores
  *together* (workers + intra-op ≤ cores, at least one of each): two read workers plus one
  spinning intra-op thread per core oversubscribe a small machine (measured: +9–21 % with one
  intra-op thread, +10–28 % with spinning off, 2 cores). While a pipeline feeds the session,
  ONNX Runtime's intra-op threads do not spin (``session.intra_op.allow_spinning = "0"``): a
  spinning thread burns the core a read worker needs between batches. The intra-op count is
  always set explicitly, which also keeps ONNX Runtime from pinning its threads to cores (it
  pins only when it picks the count itself), so nothing fights the workers for a core.
  Explicit counts override the plan (bounded by :func:`check_threads`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from medfuse.errors import ThreadCountError

__all__ = [
    "HARD_MAX_THREADS",
    "ThreadPlan",
    "available_cores",
    "check_threads",
    "max_threads",
    "plan_threads",
]

HARD_MAX_THREADS = 256
"""No thread or worker count above this is accepted, whatever the core count."""

MAX_DEFAULT_WORKERS = 4
"""The planned read workers never exceed this (reading is bounded by the file system too)."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it, else the count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def max_threads(cores: int) -> int:
    """The largest thread / worker count accepted on ``cores`` cores."""
    return min(HARD_MAX_THREADS, max(4 * max(1, cores), 16))


def check_threads(n: object, what: str, *, cores: int | None = None, minimum: int = 1) -> int:
    """Return ``n`` when it is an allowed count for ``what``; else raise ThreadCountError.

    Parameters
    ----------
    n:
        The count asked for (an ``int``; ``bool`` is refused).
    what:
        What the count is for, as the user wrote it (``"--threads"``, ``"workers"``).
    cores:
        Cores to size the maximum to (default: :func:`available_cores`).
    minimum:
        Smallest allowed value (``0`` where "no threads, run inline" is meaningful).
    """
    hi = max_threads(available_cores() if cores is None else cores)
    if isinstance(n, bool) or not isinstance(n, int):
        raise ThreadCountError(
            f"{what} must be a whole number in {minimum}..{hi}, got a {type(n).__name__}"
        )
    if not minimum <= n <= hi:
        raise ThreadCountError(
            f"{what} {n} is outside the allowed range {minimum}..{hi} on this machine "
            f"({hi} = max(4 × cores, 16), at most {HARD_MAX_THREADS}); leave it out to let "
            "medfuse size threads to the cores"
        )
    return n


@dataclass(frozen=True)
class ThreadPlan:
    """How many threads a session and its pipeline use.

    Attributes
    ----------
    cores:
        Cores the plan was sized to.
    workers:
        Read / preprocessing workers of the pipeline (``0``: preprocess inline).
    intra_op:
        ONNX Runtime intra-op threads (always set explicitly: no core pinning).
    inter_op:
        ONNX Runtime inter-op threads (1: medfuse runs graphs sequentially).
    allow_spinning:
        Whether ONNX Runtime's intra-op threads may spin-wait for work.
    """

    cores: int
    workers: int
    intra_op: int
    inter_op: int
    allow_spinning: bool

    def describe(self) -> str:
        spin = "on" if self.allow_spinning else "off"
        return (
            f"{self.workers} read worker(s) + {self.intra_op} inference thread(s) on "
            f"{self.cores} core(s), spinning {spin}"
        )


def default_workers(cores: int) -> int:
    """Read workers a pipeline gets on ``cores`` cores when none are asked for."""
    return min(MAX_DEFAULT_WORKERS, max(2, cores // 4))


def plan_threads(
    cores: int | None = None,
    workers: int | None = None,
    intra_op: int | None = None,
    *,
    pipeline: bool = True,
    allow_spinning: bool | None = None,
) -> ThreadPlan:
    """Size read workers and inference threads to the cores together.

    Parameters
    ----------
    cores:
        Cores to plan for (default: :func:`available_cores`).
    workers:
        Read workers asked for (``None``: :func:`default_workers` when ``pipeline``, else 0).
        Bounded by :func:`check_threads` (0 allowed).
    intra_op:
        Inference threads asked for (``None``: the cores the workers leave, at least 1).
        Bounded by :func:`check_threads`.
    pipeline:
        Whether a read pipeline feeds the session (then the workers share the cores and
        ONNX Runtime does not spin).
    allow_spinning:
        Overrides the spinning decision (``None``: spin only when nothing else shares the cores).
    """
    n = available_cores() if cores is None else max(1, int(cores))
    if workers is None:
        w = default_workers(n) if pipeline else 0
    else:
        w = check_threads(workers, "workers", cores=n, minimum=0)
    t = max(1, n - w) if intra_op is None else check_threads(intra_op, "threads", cores=n)
    spin = (w == 0 and t <= n) if allow_spinning is None else bool(allow_spinning)
    return ThreadPlan(cores=n, workers=w, intra_op=t, inter_op=1, allow_spinning=spin)
