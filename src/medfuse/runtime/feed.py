"""The screening run's feed: discovery on a thread of its own, studies handed to the pipeline as
their folders are read (:class:`~medfuse.runtime.dicom.streaming.StudyStream`).

Decoding, preprocessing and inference of the first studies overlap the reading of the other
headers, instead of waiting for the whole tree. Studies already in the results file (by key) are
left out here, except a study that discovery found spread over folders: it may have been
recorded from part of its files by a run that was stopped, so its final form is screened again.
Each fed study comes with whether it was final when discovery handed it on; a provisional one is
final unless :meth:`StudyStream.changed` says otherwise (see :mod:`medfuse.runtime.screening`).

Discovery runs at most :data:`AHEAD` studies ahead of the pipeline (the queue between them is
bounded), so the studies waiting to be screened do not pile up in memory when headers are read
faster than studies are screened.

"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from medfuse.runtime.dicom.streaming import StudyStream
from medfuse.runtime.dicom.study import Study

__all__ = ["DiscoveryFeed"]

_END = object()
AHEAD = 16  # studies discovery may hand on before the pipeline takes them


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
        Discovery progress, ``progress(files read, files found)`` (called on the feed's thread).

    Iterating yields studies; :attr:`order` receives ``(key, study, final)`` for each, in the
    same order, for the consumer to pair with the pipeline's outcomes (``final``: discovery was
    done when the study was handed on).
    """

    def __init__(
        self,
        root: Path,
        secret: bytes,
        done: frozenset[str],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self._stop = threading.Event()
        self.stream = StudyStream(root, progress=progress, stop=self._stop.is_set)
        self._secret = secret
        self._done = done
        self._queue: queue.Queue[object] = queue.Queue(maxsize=AHEAD)
        self._first: object | None = None
        self.order: deque[tuple[str, Study, bool]] = deque()
        self.fed = 0
        self._pending: int | None = None
        self.already = 0  # studies found already in the results file (once discovery is done)
        self._thread = threading.Thread(target=self._run, name="medfuse-discovery", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            already: set[str] = set()  # a study may be handed on twice (provisional, final)
            for study in self.stream:
                key, final = study.key(self._secret), self.stream.done
                if key in self._done and not (final and self.stream.changed(study.uid)):
                    already.add(study.uid)
                else:
                    already.discard(study.uid)
                    if not self._put((key, study, final)):
                        return
                del study  # the consumer holds it while it is screened, no longer
            if self._stop.is_set():
                return  # closed: the stream ended unfinished
            self.already = len(already)
            self._pending = self.stream.studies_found - self.already
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)
        else:
            self._put(_END)

    def _put(self, item: object) -> bool:
        """Queue ``item`` once the pipeline has room; False when the feed was closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def close(self) -> None:
        """Stop discovery early (the consumer gave up, e.g. on an error) and wait for it."""
        self._stop.set()
        self._thread.join()

    def _get(self) -> object:
        if self._first is not None:
            item, self._first = self._first, None
            return item
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

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
        """Wait for discovery to finish (re-raising its error)."""
        self._thread.join()
