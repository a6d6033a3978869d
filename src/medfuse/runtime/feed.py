"""The screening run's feed: discovery beside the pipeline, studies handed to it as their folders
are read (:class:`~medfuse.runtime.dicom.streaming.StudyStream`).

Decoding, preprocessing and inference of the first studies overlap the reading of the other
headers, instead of waiting for the whole tree. Studies already in the results file (by key) are
left out here, except a study that discovery found spread over folders: it may have been
recorded from part of its files by a run that was stopped, so its final form is screened again.
Each fed study comes with whether it was final when discovery handed it on; a provisional one is
final unless :meth:`StudyStream.changed` says otherwise (see :mod:`medfuse.runtime.screening`).

Discovery on a thread runs at most :data:`AHEAD` studies ahead of the pipeline (the queue
between them is bounded; in a process, the pipe's buffer bounds it), so the studies waiting to
be screened do not pile up in memory when headers are read faster than studies are screened.

Where it can, discovery runs in a **process of its own** (forked, so it starts in milliseconds
with every module already imported): header parsing is Python work, and on a thread it holds
the interpreter lock the read workers and preprocessing need (measured on 2 cores: the loop ran
at 31–34 studies/s with discovery on a thread, 46 with it in a process). Studies cross a
one-way pipe pickled (about 1 ms per study to unpickle); the pipe's buffer (64 KiB on Linux, a
few studies) bounds how far the process runs ahead, and the end of either side is seen by the
other: the parent gone or closing its end breaks the child's next hand-over, the child's death
ends the parent's read (an error of the run, not a wait). A fork is only safe on Linux and
while no other Python thread runs (a lock held by another thread would stay locked in the
child); otherwise discovery runs on a thread, as it does when ``process=False``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from medfuse.errors import MedfuseError, UsageError
from medfuse.runtime.dicom.discovery import Discovery
from medfuse.runtime.dicom.streaming import StudyStream
from medfuse.runtime.dicom.study import Study

__all__ = ["AHEAD", "DiscoveryFeed", "StreamState", "can_fork"]

logger = logging.getLogger(__name__)

_END = object()
AHEAD = 16  # studies discovery may hand on before the pipeline takes them
_POLL_S = 0.1  # how often the thread's blocked hand-over looks whether the feed was closed
_CLOSE_S = 1.0  # how long close() waits for a discovery process before killing it


def can_fork() -> bool:
    """Whether discovery may run in a forked process: Linux (fork is unsafe on macOS and
    absent on Windows) and no Python thread but this one (its locks would stay held in the
    child)."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


@dataclass
class StreamState:
    """What the consumer reads of a stream that runs in another process (the same attributes
    as :class:`StudyStream`), updated from its messages."""

    done: bool = False
    studies_found: int = 0
    busy_s: float = 0.0
    counts: Discovery | None = None
    changed_uids: set[str] = field(default_factory=set)

    @property
    def discovery(self) -> Discovery:
        if self.counts is None:
            raise UsageError("StudyStream.discovery is known only once the stream is exhausted")
        return self.counts

    def changed(self, uid: str) -> bool:
        return uid in self.changed_uids


class DiscoveryFeed:
    """Iterate the studies to screen (provisional ones included) while discovery runs.

    Parameters
    ----------
    root:
        The studies folder.
    secret:
        The study-key secret.
    done:
        Keys already in the results file: their studies are not fed.
    progress:
        Discovery progress, ``progress(files read, files found)`` (called on the feed's thread;
        discovery then runs on a thread).
    process:
        Run discovery in a forked process (True), on a thread (False), or in a process where
        :func:`can_fork` allows it (None, the default).

    Iterating yields studies; :attr:`order` receives ``(key, study, final)`` for each, in the
    same order, for the consumer to pair with the pipeline's outcomes (``final``: discovery was
    done when the study was handed on). :attr:`stream` answers ``done``, ``changed(uid)``,
    ``studies_found``, ``discovery`` and ``busy_s`` as a :class:`StudyStream` does.
    """

    def __init__(
        self,
        root: Path,
        secret: bytes,
        done: frozenset[str],
        *,
        progress: Callable[[int, int], None] | None = None,
        process: bool | None = None,
    ) -> None:
        if process is None:
            process = progress is None and can_fork()
        elif process and (progress is not None or not sys.platform.startswith("linux")):
            raise UsageError("discovery runs in a process only on Linux and without progress")
        self._secret = secret
        self._done = done
        self._first: object | None = None
        self.order: deque[tuple[str, Study, bool]] = deque()
        self.fed = 0
        self._pending: int | None = None
        self.already = 0  # studies found already in the results file (once discovery is done)
        self.process: Any = None  # the discovery process, when it runs in one
        self._parent: int | None = None
        logger.debug("discovery runs %s", "in a process" if process else "on a thread")
        if process:
            ctx = multiprocessing.get_context("fork")
            self._stop = threading.Event()  # the parent's only: the child watches the pipe
            # a one-way pipe: the child alone writes, the parent alone reads, so the end of
            # either is seen by the other (EOF, a broken pipe), and the pipe's own buffer
            # bounds how far discovery runs ahead
            self._conn, self._send = ctx.Pipe(duplex=False)
            self._parent = os.getpid()
            walker = StudyStream(root, stop=self._stopped)  # checks root here
            self.stream: StudyStream | StreamState = StreamState()
            self.process = ctx.Process(
                target=self._child, args=(walker,), name="medfuse-discovery", daemon=True
            )
            self.process.start()
            self._send.close()
            self._thread: threading.Thread | None = None
        else:
            self._stop = threading.Event()
            self._queue: queue.Queue[object] = queue.Queue(maxsize=AHEAD)
            self.stream = StudyStream(root, progress=progress, stop=self._stop.is_set)
            self._thread = threading.Thread(
                target=self._discover, args=(self.stream,), name="medfuse-discovery", daemon=True
            )
            self._thread.start()

    # -- the discovering side (a thread here, or the forked process) -------------------------

    def _discover(self, stream: StudyStream) -> None:
        remote = self.process is not None
        try:
            already: set[str] = set()  # a study may be handed on twice (provisional, final)
            told: set[str] = set()  # changed studies the consumer was told of
            for study in stream:
                key, final = study.key(self._secret), stream.done
                if key in self._done and not (final and stream.changed(study.uid)):
                    already.add(study.uid)
                else:
                    already.discard(study.uid)
                    item: tuple[Any, ...] = (key, study, final)
                    if remote:
                        news = tuple(stream.changed_uids - told)
                        told.update(news)
                        item = (*item, news)
                    if not self._put(item):
                        return
                del study  # the consumer holds it while it is screened, no longer
            if self._stopped():
                return  # closed: the stream ended unfinished
            already_n = len(already)
            pending = stream.studies_found - already_n
            if remote:
                counts = stream.discovery
                end: object = (
                    "end",
                    already_n,
                    pending,
                    stream.studies_found,
                    stream.busy_s,
                    dict(counts.skipped),
                    counts.files_seen,
                    tuple(stream.changed_uids),
                )
            else:
                self.already, self._pending, end = already_n, pending, _END
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(("error", _portable(exc)) if remote else exc)
        else:
            self._put(end)

    def _child(self, walker: StudyStream) -> None:
        """The discovery process: Ctrl-C is for the parent, which stops it by closing its end
        of the pipe (the next hand-over fails) or, at last, kills it."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self._conn.close()
        try:
            self._discover(walker)
        finally:
            self._send.close()

    def _stopped(self) -> bool:
        """The feed was closed, or (in the discovery process) the run that started it is gone:
        an orphan would otherwise hold the run's files open (its lock too)."""
        if self._stop.is_set():
            return True
        parent = self._parent
        return parent is not None and os.getpid() != parent and os.getppid() != parent

    def _put(self, item: object) -> bool:
        """Queue ``item`` once the pipeline has room; False when the feed was closed."""
        if self.process is not None:  # in the discovery process: pickled here, so an error
            try:  # pickling is the run's error, not a study silently lost
                self._send.send(item)
            except (BrokenPipeError, ConnectionResetError):
                return False  # the parent closed its end, or is gone
            return True
        while not self._stopped():
            try:
                self._queue.put(item, timeout=_POLL_S)
            except queue.Full:
                continue
            return True
        return False

    # -- the consuming side -------------------------------------------------------------------

    def close(self) -> None:
        """Stop discovery early (the consumer gave up, e.g. on an error) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            return
        self._conn.close()  # its next hand-over fails: it ends
        self.process.join(_CLOSE_S)
        if self.process.is_alive():  # deep in a long stretch of reading: it holds nothing we need
            self.process.kill()
            self.process.join()

    def _get(self) -> object:
        if self._first is not None:
            item, self._first = self._first, None
            return item
        item = self._queue.get() if self.process is None else self._receive()
        if isinstance(item, BaseException):
            raise item
        return item

    def _receive(self) -> object:
        """The next item from the discovery process, with its news applied to :attr:`stream`."""
        state = self.stream
        assert isinstance(state, StreamState)
        try:  # the end of the pipe before the last message: the process died (mid-message too)
            msg = self._conn.recv()
        except (EOFError, OSError):
            self.process.join(_CLOSE_S)
            raise MedfuseError(
                "discovery stopped unexpectedly (its process exited with code "
                f"{self.process.exitcode}); run again — studies already recorded are "
                "kept with --resume"
            ) from None
        if msg[0] == "error":
            return msg[1]
        if msg[0] == "end":
            _, self.already, self._pending, found, busy, skipped, seen, changed = msg
            state.studies_found, state.busy_s = found, busy
            state.counts = Discovery(
                studies=(), skipped=MappingProxyType(skipped), files_seen=seen
            )
            state.changed_uids.update(changed)
            state.done = True
            return _END
        key, study, final, news = msg
        state.changed_uids.update(news)
        return (key, study, final)

    def wait_first(self) -> bool:
        """Block until there is a study to screen (True) or discovery ended without one."""
        if self._first is None:
            self._first = self._get()
        return self._first is not _END

    def __iter__(self) -> Iterator[Study]:
        while True:
            item = self._get()
            if item is _END:
                self._first = _END  # later iterations end too
                return
            assert isinstance(item, tuple)
            key, study, final = item
            self.order.append((key, study, final))
            self.fed += 1
            yield study

    def pending_total(self) -> int:
        """Studies to screen in all (final studies not already in the results file); once
        discovery is done."""
        return self._pending or 0

    def join(self) -> None:
        """Wait for discovery to finish (its errors are raised by the iteration)."""
        if self._thread is not None:
            self._thread.join()
        else:
            self.process.join()
            self._conn.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling to the parent unchanged, else a MedfuseError naming its
    type only (a foreign message could quote a header value)."""
    try:
        back = pickle.loads(pickle.dumps(exc))
    except Exception:
        back = None
    if isinstance(back, BaseException) and str(back) == str(exc):
        return exc
    return MedfuseError(f"discovery failed ({type(exc).__name__}); run again, or report it")
