"""The screening run's feed: discovery on a thread of its own, studies handed to the pipeline as
their folders are read (:class:`~medfuse.runtime.dicom.streaming.StudyStream`).

Decoding, preprocessing and inference of the first studies overlap the reading of the other
headers, instead of waiting for the whole tree. Studies already in the results file (by key) are
left out here. Whether a screened study was final is asked of :attr:`DiscoveryFeed.stream` once
discovery is done; see :mod:`medfuse.runtime.screening`.
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

    Iterating yields studies; :attr:`order` receives ``(key, study)`` for each, in the same
    order, for the consumer to pair with the pipeline's outcomes.
    """

    def __init__(
        self,
        root: Path,
        secret: bytes,
        done: frozenset[str],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.stream = StudyStream(root, progress=progress)
        self._secret = secret
        self._done = done
        self._queue: queue.Queue[object] = queue.Queue()
        self._first: object | None = None
        self.order: deque[tuple[str, Study]] = deque()
        self.fed = 0
        self._pending: int | None = None
        self.already = 0  # studies found already in the results file (once discovery is done)
        self._thread = threading.Thread(target=self._run, name="medfuse-discovery", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for study in self.stream:
                key = study.key(self._secret)
                if key not in self._done:
                    self._queue.put((key, study))
            # the counts a summary needs, then the studies themselves are let go
            studies = self.stream.discovery.studies
            keys = [s.key(self._secret) for s in studies]
            self.already = sum(1 for k in keys if k in self._done)
            self._pending = len(keys) - self.already
            for study, key in zip(studies, keys, strict=True):
                if key in self._done:
                    self.stream.release(study.uid)
            self.stream.drop_studies()
        except BaseException as exc:  # handed to the consumer, raised there
            self._queue.put(exc)
        else:
            self._queue.put(_END)

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
                self._queue.put(_END)  # later iterations end too
                return
            assert isinstance(item, tuple)
            key, study = item
            self.order.append((key, study))
            self.fed += 1
            yield study

    def pending_total(self) -> int:
        """Studies to screen in all (final studies not already in the results file); once
        discovery is done."""
        return self._pending or 0

    def join(self) -> None:
        """Wait for discovery to finish (re-raising its error)."""
        self._thread.join()
