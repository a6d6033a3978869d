"""Streaming discovery: studies handed on as their folders are read, not after the whole tree.

:func:`~medfuse.runtime.dicom.discover_studies` reads every header before it returns, so a
screening run waits for the whole tree before the first pixel is decoded. A
:class:`StudyStream` lists the files (cheap), then reads their headers group by group — a group
is one entry under the deepest folder that holds all files, typically one patient's or one
study's folder — and after each group yields the studies that group touched, as read so far.

A file read later can change a study already yielded (more of its files in another group, an
unreadable file beside it), so a yielded study is *provisional*: once the stream is exhausted,
:attr:`StudyStream.discovery` holds the final studies, :meth:`StudyStream.is_final` tells
whether a provisional study is the final one, and the final form of every study not yet yielded
is yielded at the end (each final form once). When a group touches a study already yielded
(studies span groups, e.g. one folder per modality), the stream stops yielding provisional
studies and hands out the rest at the end. The screening run writes a result only for a final study and screens again any
study that changed (:mod:`medfuse.runtime.screening`), so streaming changes when work starts,
never what is written.
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


def group_files(files: list[Path]) -> list[list[Path]]:
    """``files`` (in walk order) cut into groups: one per sub-folder of their deepest common
    folder, plus one for the files directly in it (a flat folder is one group: no streaming)."""
    if not files:
        return []
    base = Path(os.path.commonpath([str(f.parent) for f in files]))
    depth = len(base.parts)
    groups: dict[str, list[Path]] = {}
    for f in files:
        head = f.parts[depth] if len(f.parts) > depth + 1 else ""  # "": a file in base
        groups.setdefault(head, []).append(f)
    return list(groups.values())


class StudyStream:
    """Iterate the provisional studies under ``root`` as their groups are read.

    Parameters
    ----------
    root:
        A folder (searched recursively, any names) or a single file.
    progress:
        Called as ``progress(files read, files found)``.

    Raises
    ------
    UsageError
        ``root`` does not exist (when made, before any file is read).
    """

    def __init__(
        self, root: str | os.PathLike[str], *, progress: Callable[[int, int], None] | None = None
    ) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise UsageError(
                "the folder to search does not exist; pass an existing folder or file"
            )
        self._progress = progress
        self._collector: Collector | None = None
        self._final: Discovery | None = None
        self._final_by_uid: dict[str, Study] = {}
        self.busy_s = 0.0  # CPU seconds of the iterating thread walking and reading headers
        self.streaming = True  # False once studies are seen to span groups
        self.studies_found = 0  # once the stream is exhausted

    def __iter__(self) -> Iterator[Study]:
        quiet_pydicom()
        t0 = time.thread_time()
        walk = walk_files(self.root)
        collector = self._collector = Collector(walk.bad_folders)
        total, done = len(walk.files), 0
        yielded: dict[str, Study] = {}
        for group in group_files(walk.files):
            touched: dict[str, None] = {}
            for path in group:
                if self._progress is not None:
                    self._progress(done, total)
                uid = collector.read(path)
                done += 1
                if uid is not None:
                    touched[uid] = None
            if any(uid in yielded for uid in touched):
                # studies span groups (e.g. one folder per modality): stop handing out
                # provisional studies that would only be screened again
                self.streaming = False
            if not self.streaming:
                continue
            provisional = [collector.study(uid) for uid in touched]
            self.busy_s += time.thread_time() - t0
            for study in provisional:
                yielded[study.uid] = study
                yield study
            t0 = time.thread_time()
        if self._progress is not None:
            self._progress(total, total)
        final = collector.result()
        self._collector = None  # its tree is in the final studies now
        self.studies_found = len(final.studies)
        # before `done` turns true: a consumer on another thread asks is_final once it is
        self._final_by_uid = {s.uid: s for s in final.studies}
        self._final = final
        self.busy_s += time.thread_time() - t0
        # every study's final form is handed out once
        yield from (s for s in self._final.studies if yielded.get(s.uid) != s)

    @property
    def done(self) -> bool:
        """Whether every header has been read (:attr:`discovery` is then final)."""
        return self._final is not None

    @property
    def discovery(self) -> Discovery:
        """The final discovery (studies sorted by UID, skipped files); after iteration."""
        if self._final is None:
            raise UsageError("StudyStream.discovery is known only once the stream is exhausted")
        return self._final

    def is_final(self, study: Study) -> bool:
        """Whether a provisional ``study`` is its final form (same files, same warnings)."""
        return self._final_by_uid.get(study.uid) == study

    def release(self, uid: str) -> None:
        """Forget the final form of study ``uid`` (its result is written): a long run then
        holds only the studies still in flight, not every study it has seen."""
        self._final_by_uid.pop(uid, None)

    def drop_studies(self) -> None:
        """Keep only the counts of :attr:`discovery` (studies found, skipped files), not its
        studies; :meth:`is_final` still answers for the studies not yet released."""
        if self._final is not None:
            self.studies_found = len(self._final.studies)
            self._final = Discovery(
                studies=(), skipped=self._final.skipped, files_seen=self._final.files_seen
            )

    def final(self, uid: str) -> Study | None:
        """The final form of study ``uid``."""
        return self._final_by_uid.get(uid)
