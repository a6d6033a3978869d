"""Streaming discovery: studies handed on as their folders are read, not after the whole tree.

:func:`~medfuse.runtime.dicom.discover_studies` reads every header before it returns, so a
screening run waits for the whole tree before the first pixel is decoded. A
:class:`StudyStream` lists the files (cheap), then reads their headers group by group — a group
is one entry under the deepest folder that holds all files, typically one patient's or one
study's folder — and after each group yields the studies that group touched, as read so far.

A file read later can change a study already yielded (more of its files in another group), so
a yielded study is *provisional*: it is final unless a later group touches it, which
:meth:`StudyStream.changed` tells once the stream is exhausted. The stream then rebuilds that
study from its files (read again from its first group) and yields its final form at the end,
with every study not yet yielded. When a group touches a study already yielded (studies span
groups, e.g. one folder per modality), the stream stops yielding provisional studies and hands
out the rest at the end. The screening run writes each record at once and screens again any
study that changed; its second record supersedes the first (the last record of a study key
counts, :mod:`medfuse.runtime.screening`), so streaming changes when work starts, never the
current records.

Memory stays flat over a long tree: a yielded study's header facts are let go at once (its
consumer holds them while it screens the study); the stream keeps the file list (strings) and,
per yielded study, the index of its group.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from medfuse.errors import UsageError
from medfuse.runtime.dicom._quiet import quiet_pydicom
from medfuse.runtime.dicom.discovery import Collector, Discovery, walk_files
from medfuse.runtime.dicom.study import Study

__all__ = ["StudyStream", "group_files"]


def group_files(files: list[str]) -> list[list[str]]:
    """``files`` (absolute, in walk order) cut into groups: one per sub-folder of their deepest
    common folder, plus one for the files directly in it, first (a flat folder is one group:
    no streaming)."""
    if not files:
        return []
    base = os.path.commonpath([os.path.dirname(f) for f in files])
    cut = len(base.rstrip(os.sep)) + 1  # where the entry under the common folder begins
    groups: dict[str, list[str]] = {"": []}
    for f in files:
        head, sep, _ = f[cut:].partition(os.sep)
        groups.setdefault(head if sep else "", []).append(f)  # "": a file in the common folder
    return [g for g in groups.values() if g]


def _loose_first(groups: list[list[str]]) -> bool:
    """Whether the first of several groups is the files directly in their common folder: a
    study among them lies in that folder, beside every later group, so an unreadable file in
    any of them counts on it (``unreadable_nearby``) and it is final only once all are read."""
    if len(groups) < 2:
        return False
    base = os.path.commonpath([os.path.dirname(g[0]) for g in groups])
    return os.path.dirname(groups[0][0]) == base


class StudyStream:
    """Iterate the provisional studies under ``root`` as their groups are read.

    Parameters
    ----------
    root:
        A folder (searched recursively, any names) or a single file.
    progress:
        Called as ``progress(files read, files found)``.
    stop:
        Asked before each file; when it answers True the stream ends at once, unfinished (a
        run that failed does not wait for the rest of the tree).

    Raises
    ------
    UsageError
        ``root`` does not exist (when made, before any file is read).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        progress: Callable[[int, int], None] | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.root = Path(os.path.abspath(root))  # groups are cut from absolute paths
        if not self.root.exists():
            raise UsageError("the folder to search does not exist; pass an existing folder or file")
        self._progress = progress
        self._stop = stop
        self._counts: Discovery | None = None
        self._changed: set[str] = set()
        self.busy_s = 0.0  # CPU seconds of the iterating thread walking and reading headers
        self.streaming = True  # False once studies are seen to span groups
        self.studies_found = 0  # once the stream is exhausted

    def __iter__(self) -> Iterator[Study]:
        quiet_pydicom()
        t0 = time.thread_time()
        walk = walk_files(self.root)
        collector = Collector(walk.bad_folders)
        total, done = len(walk.files), 0
        groups = group_files(walk.files)
        loose = _loose_first(groups)
        del walk
        handed: dict[str, int] = {}  # study yielded provisionally → its group
        for index, group in enumerate(groups):
            touched: dict[str, None] = {}
            for path in group:
                if self._stop is not None and self._stop():
                    return
                if self._progress is not None:
                    self._progress(done, total)
                uid = collector.read(path)
                done += 1
                if uid is not None:
                    touched[uid] = None
            again = [uid for uid in touched if uid in handed]
            if again:
                # studies span groups (e.g. one folder per modality): stop handing out
                # provisional studies that would only be screened again
                self.streaming = False
            for uid in again:  # rebuilt from all its files read so far, in walk order
                self._changed.add(uid)
                collector.forget(uid)
                for path in [*groups[handed.pop(uid)], *group]:
                    collector.read(path, only=uid)
            if not self.streaming or (loose and index == 0):
                continue  # (the loose files' studies are handed out at the end)
            provisional = [collector.study(uid) for uid in touched]
            for study in provisional:
                handed[study.uid] = index
                collector.forget(study.uid)
            self.busy_s += time.thread_time() - t0
            yield from provisional
            del provisional
            t0 = time.thread_time()
        if self._progress is not None:
            self._progress(total, total)
        rest = collector.result()  # the studies not handed out yet, in their final form
        self.studies_found = len(handed) + len(rest.studies)
        self._counts = Discovery(studies=(), skipped=rest.skipped, files_seen=rest.files_seen)
        self.busy_s += time.thread_time() - t0
        yield from rest.studies

    @property
    def done(self) -> bool:
        """Whether every header has been read: what the stream yields from then on is final."""
        return self._counts is not None

    @property
    def discovery(self) -> Discovery:
        """The discovery's counts (skipped files by reason, files seen), after iteration; its
        studies were handed out (:attr:`studies_found` counts them)."""
        if self._counts is None:
            raise UsageError("StudyStream.discovery is known only once the stream is exhausted")
        return self._counts

    def changed(self, uid: str) -> bool:
        """Whether study ``uid``, yielded provisionally, was touched by a later group (its
        final form is yielded at the end); once the stream is exhausted."""
        return uid in self._changed

    @property
    def changed_uids(self) -> frozenset[str]:
        """The studies :meth:`changed` answers True for, so far."""
        return frozenset(self._changed)
