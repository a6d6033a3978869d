"""Find the studies in a folder: Study → Series → Instance from headers only.

Any nesting, any file names (with or without ``.dcm``); files that are not usable DICOM images
are skipped and counted by reason, never fatal. Pixel data is not read.

Only regular files are opened, and without blocking (``O_NONBLOCK``, then ``fstat``), so a named
pipe, a device or a socket in the tree is counted (``not_regular``) instead of hanging the run.
A folder that cannot be listed is counted (``unreadable_folder``). A file whose header cannot be
parsed is counted (``unreadable``) and, when its Study and Series Instance UIDs can still be read,
attributed to its series (:attr:`Series.unreadable_files`) so that the series is refused rather
than silently read without it; an unreadable file or folder whose study cannot be told is counted
on every study with files beside it (:attr:`Study.unreadable_nearby`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import stat
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO, cast

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from medfuse.errors import OversizeDicomError, UsageError
from medfuse.runtime.dicom._facts import (
    HEADER_PEEK,
    PIXEL_TAG_BE,
    PIXEL_TAG_LE,
    header_facts,
    pixel_length_fits,
)
from medfuse.runtime.dicom._header import read_header_view
from medfuse.runtime.dicom._quiet import quiet_pydicom, reading
from medfuse.runtime.dicom._read import DICOMDIR_SOP_CLASS
from medfuse.runtime.dicom.geometry import (
    frame_orientation,
    frame_position,
    frame_spacing,
    imager_spacing,
)
from medfuse.runtime.dicom.limits import DEFLATED, check_deflated, oversize
from medfuse.runtime.dicom.study import Instance, Series, Study

__all__ = ["SKIP_REASONS", "Collector", "Discovery", "discover_studies", "walk_files"]

logger = logging.getLogger(__name__)

SKIP_REASONS = (
    "not_dicom",
    "unreadable",
    "dicomdir",
    "non_image",
    "no_pixels",
    "missing_uid",
    "not_regular",
    "unreadable_folder",
    "too_large",
)
_STUDY_UID_TAG = 0x0020000D
_SERIES_UID_TAG = 0x0020000E


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover_studies` found.

    Attributes
    ----------
    studies:
        Studies sorted by their UID (a stable order; UIDs are never logged), each with its
        series sorted by UID and their instances sorted by file path.
    skipped:
        Reason → number of files (or folders) skipped: ``not_dicom`` (no DICOM header, empty),
        ``unreadable`` (DICOM but could not be parsed, or an I/O error), ``dicomdir``,
        ``non_image`` (no Rows: RT plan, SR, ...), ``no_pixels`` (image header without
        PixelData), ``missing_uid`` (no Study/Series Instance UID), ``not_regular`` (a named
        pipe, device or socket), ``unreadable_folder`` (a folder that could not be listed).
    files_seen:
        Directory entries looked at (regular files and the others).
    """

    studies: tuple[Study, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    files_seen: int = 0

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())


class _Skip(Exception):
    """A file set aside, with the study/series it belongs to when that could be read."""

    def __init__(self, reason: str, uids: tuple[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.uids = uids


def _int(ds: Dataset, keyword: str, default: int | None) -> int | None:
    try:
        value = ds.get(keyword)
        return default if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return default


def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading without blocking; raise _Skip unless it is a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        try:  # a socket cannot be opened at all: it is still not a regular file
            regular = stat.S_ISREG(os.stat(path).st_mode)
        except OSError:
            regular = True
        raise _Skip("unreadable" if regular else "not_regular") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Skip("not_regular")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return open(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def _read_header(path: Path) -> tuple[str, str, str, Instance, str | None]:
    """(study uid, series uid, modality, instance, frame of reference uid) or raise _Skip.

    A plain header is read by the fast reader (:mod:`._header`); anything else, and anything
    the fast read would classify as skipped, goes through pydicom, so both give one answer.
    """
    with _open_regular(path) as fh:
        view = read_header_view(fh)
        if view is not None:
            try:
                with reading():
                    tsyntax = str(view.file_meta.get("TransferSyntaxUID", ""))
                    # the view answers what discovery asks a Dataset (get, in, file_meta)
                    header = cast(Dataset, view)
                    return _classify(path, fh, header, tsyntax, view.pixel_offset, view.head)
            except Exception:  # skipped or odd: pydicom decides, so both paths agree
                pass
        fh.seek(0)
        try:
            check_deflated(fh)  # pydicom inflates a deflated file whole, even for its header
        except OversizeDicomError as exc:
            raise _Skip("too_large") from exc
        try:
            with reading():
                try:
                    ds = pydicom.dcmread(fh, stop_before_pixels=True)
                except InvalidDicomError as exc:
                    raise _Skip("not_dicom") from exc
                except Exception as exc:
                    raise _Skip("unreadable", _recover_uids(fh)) from exc
                tsyntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
                offset = fh.tell()
                head = b"" if tsyntax == DEFLATED else fh.read(HEADER_PEEK)
                return _classify(path, fh, ds, tsyntax, offset, head)
        except _Skip:
            raise
        except Exception as exc:
            # an I/O error, or a malformed element pydicom only rejects when its value is read
            # (e.g. an unknown VR): this file is unreadable, the others are still discovered
            raise _Skip("unreadable", _recover_uids(fh)) from exc


def _recover_uids(fh: BinaryIO) -> tuple[str, str] | None:
    """Study and Series Instance UIDs of a file whose header failed to parse, if they come first.

    Reads the elements up to (0020,000E) one by one and stops at the first error, so a file
    damaged after its UIDs is still attributed to its series.
    """
    from pydicom.filereader import data_element_generator, read_dataset, read_preamble
    from pydicom.uid import UID

    try:
        fh.seek(0)
        with reading():
            read_preamble(fh, False)
            meta = read_dataset(
                fh, is_implicit_VR=False, is_little_endian=True, stop_when=_past_meta
            )
            tsyntax = UID(str(meta.get("TransferSyntaxUID", "")))
            if not tsyntax.is_transfer_syntax or tsyntax.is_deflated:
                return None
            found: dict[int, str] = {}
            elements = data_element_generator(
                fh, tsyntax.is_implicit_VR, tsyntax.is_little_endian, defer_size=256
            )
            for elem in elements:
                tag = int(elem.tag)
                if tag in (_STUDY_UID_TAG, _SERIES_UID_TAG) and isinstance(elem.value, bytes):
                    found[tag] = elem.value.decode("latin-1").strip("\x00 ")
                if tag >= _SERIES_UID_TAG:
                    break
    except Exception:  # damaged before the UIDs: nothing to attribute
        pass
    else:
        study, series = found.get(_STUDY_UID_TAG), found.get(_SERIES_UID_TAG)
        return (study, series) if study and series else None
    return None


def _cut_short(ds: Dataset, size: int) -> bool:
    """Whether the header read ended inside an element (the file was cut), not after one.

    pydicom stops quietly at the end of a file, also in the middle of an element; the last
    element read then does not end where the file does.
    """
    elements = getattr(ds, "_dict", None)
    if not elements:
        return False
    last = elements[next(reversed(elements))]
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if not isinstance(tell, int) or not isinstance(length, int) or length == 0xFFFFFFFF:
        return False
    value = getattr(last, "value", None)
    short = isinstance(value, bytes | bytearray) and len(value) < length
    return short or tell + length < size


def _declares_image(ds: Dataset) -> bool:
    """Whether the file's SOP class is an image storage class (its name says "Image")."""
    from pydicom.uid import UID

    uid = ds.file_meta.get("MediaStorageSOPClassUID") or ds.get("SOPClassUID")
    try:
        return "Image" in UID(str(uid or "")).name
    except Exception:
        return False


_NUMERIC = ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth")
_VOI_FUNCTIONS = frozenset({"LINEAR", "LINEAR_EXACT", "SIGMOID"})


def bad_values(ds: Dataset) -> tuple[str, ...]:
    """Keywords of the attributes the pixel pipeline converts whose values it cannot use:
    numbers that are not numbers, a VOILUTFunction that is not a defined term, a NumberOfFrames
    that is not a positive integer. Seen in the header, so ``scan`` and ``run`` agree."""
    bad: list[str] = []
    for keyword in _NUMERIC:
        try:
            value = ds.get(keyword)
            if value is None or value == "":
                continue
            values = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
            if not all(math.isfinite(float(str(v))) for v in values):
                bad.append(keyword)
        except Exception:
            bad.append(keyword)
    try:
        function = ds.get("VOILUTFunction")
        if function not in (None, "") and str(function).strip().upper() not in _VOI_FUNCTIONS:
            bad.append("VOILUTFunction")
    except Exception:
        bad.append("VOILUTFunction")
    try:
        frames = ds.get("NumberOfFrames")
        if frames not in (None, "") and int(str(frames)) < 1:
            bad.append("NumberOfFrames")
    except Exception:
        bad.append("NumberOfFrames")
    return tuple(bad)


def _digest(value: object) -> str:
    """A short digest of a header value compared across files (the value itself is not kept)."""
    text = str(value or "").strip()
    return (
        hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
        if text
        else ""
    )


def _size(fh: BinaryIO) -> int:
    return os.fstat(fh.fileno()).st_size


def _past_meta(tag: int, vr: str | None, length: int) -> bool:
    return tag >> 16 != 2


def _classify(
    path: Path, fh: BinaryIO, ds: Dataset, tsyntax: str, offset: int, head: bytes
) -> tuple[str, str, str, Instance, str | None]:
    """Classify one header (raise _Skip) and describe it as an Instance with its facts.

    ``head`` holds the bytes at ``offset``, where the header read stopped: the Pixel Data
    element's tag when the file has one.
    """
    marker = head[:4]
    cut = _cut_short(ds, _size(fh))  # before any value is read: reading converts elements
    if len(ds) == 0 and not ds.file_meta:
        raise _Skip("not_dicom")
    if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS or (
        "DirectoryRecordSequence" in ds
    ):
        raise _Skip("dicomdir")
    if len(ds) == 0:
        raise _Skip("unreadable")
    study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
    series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    uids = (study_uid, series_uid) if study_uid and series_uid else None
    if "Rows" not in ds or "Columns" not in ds:
        # an image file cut short inside its header is a lost slice, not a non-image object
        # (a complete image-class file without image attributes, e.g. a stub, is non_image)
        if cut and _declares_image(ds):
            raise _Skip("unreadable", uids)
        raise _Skip("non_image")
    if tsyntax != DEFLATED and marker not in (PIXEL_TAG_LE, PIXEL_TAG_BE):
        # an image header without pixels is a lost slice of its series either way
        raise _Skip("unreadable" if cut else "no_pixels", uids)
    if uids is None:
        raise _Skip("missing_uid")
    rows, cols = _int(ds, "Rows", None), _int(ds, "Columns", None)
    frames = _int(ds, "NumberOfFrames", 1)
    if not rows or not cols or not frames or rows < 0 or cols < 0 or frames < 0:
        raise _Skip("unreadable", (study_uid, series_uid))
    modality = str(ds.get("Modality", "") or "").strip().upper()
    bits = _int(ds, "BitsAllocated", 16) or 16
    too_large = oversize(frames, rows, cols, bits * (_int(ds, "SamplesPerPixel", 1) or 1))
    instance = Instance(
        path=path,
        sop_instance_uid=str(ds.get("SOPInstanceUID", "") or ""),
        frames=frames,
        rows=rows,
        columns=cols,
        instance_number=_int(ds, "InstanceNumber", None),
        position=frame_position(ds, 0),
        orientation=frame_orientation(ds, 0),
        pixel_spacing=frame_spacing(ds, 0),
        imager_pixel_spacing=imager_spacing(ds),
        photometric_interpretation=str(ds.get("PhotometricInterpretation", "") or "")
        .strip()
        .upper(),
        samples_per_pixel=_int(ds, "SamplesPerPixel", 1) or 1,
        facts=None if too_large else header_facts(ds, fh, offset, head, (frames, rows, cols)),
        modality=modality,
        series_number=_int(ds, "SeriesNumber", None),
        transfer_syntax=tsyntax,
        problem="too_large"
        if too_large
        else None
        if pixel_length_fits(ds, head, _size(fh) - offset)
        else "pixel_length",
        patient=_digest(ds.get("PatientID", "")),
        bad_values=bad_values(ds),
        bits_stored=_int(ds, "BitsStored", None),
    )
    for_uid = str(ds.get("FrameOfReferenceUID", "") or "").strip() or None
    return study_uid, series_uid, modality, instance, for_uid


@dataclass
class FileWalk:
    """The entries under a root: files to read (as strings: a Path object costs several times
    the memory, and a large tree lists tens of thousands), and folders that could not be
    listed."""

    files: list[str] = field(default_factory=list)
    bad_folders: list[Path] = field(default_factory=list)


def walk_files(root: Path) -> FileWalk:
    """The files under ``root`` (sorted, symlinked folders followed once) and the folders
    that could not be listed; ``root`` itself when it is a file."""
    out = FileWalk()
    if not root.is_dir():
        out.files.append(str(root))
        return out

    def failed(exc: OSError) -> None:
        out.bad_folders.append(Path(exc.filename) if exc.filename else root)

    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, onerror=failed, followlinks=True):
        # symlinked folders are followed, each real folder once (no loops, no file twice)
        try:
            st = os.stat(dirpath)
        except OSError:
            out.bad_folders.append(Path(dirpath))
            dirnames.clear()
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirnames.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        out.files.extend(os.path.join(dirpath, name) for name in sorted(filenames))
    return out


@dataclass
class _SeriesParts:
    modality: str
    frame_of_reference: str | None
    instances: list[Instance] = field(default_factory=list)
    unreadable: int = 0
    frames_of_reference: set[str] = field(default_factory=set)


def _nearby(files: list[Path], problems: list[Path]) -> int:
    """How many of ``problems`` lie beside a study: inside the deepest folder holding all its
    ``files``, or in a folder that holds that one."""
    common = Path(os.path.commonpath([str(f.parent) for f in files]))
    return sum(
        1
        for p in problems
        if common in p.parents or p.parent == common or p.parent in common.parents
    )


def discover_studies(
    root: str | os.PathLike[str], *, progress: Callable[[int, int], None] | None = None
) -> Discovery:
    """Group the DICOM image files under ``root`` into studies and series, reading headers only.

    Parameters
    ----------
    root:
        A folder (searched recursively, any file names) or a single file.
    progress:
        Called as ``progress(entries read, entries found)`` as the headers are read.

    Returns
    -------
    Discovery
        Studies (StudyInstanceUID) → series (SeriesInstanceUID, with modality) → instances
        (frames, rows, columns, InstanceNumber, position, orientation, spacing, Modality,
        transfer syntax), in a deterministic order; plus the count of skipped files per reason.
        Colour images are listed (``Instance.is_grayscale`` is False); reading their pixels
        raises :class:`~medfuse.errors.UnsupportedDicomError`. Plain uncompressed images also
        carry :class:`~medfuse.runtime.dicom.study.HeaderFacts` (a few numbers, no patient data),
        with which :func:`~medfuse.runtime.dicom.load_volume` reads their pixels without
        parsing the header again.

    Raises
    ------
    UsageError
        ``root`` does not exist.
    """
    quiet_pydicom()
    t0 = time.perf_counter()
    root = Path(root)
    if not root.exists():
        raise UsageError("the folder to search does not exist; pass an existing folder or file")
    walk = walk_files(root)
    collector = Collector(walk.bad_folders)
    total = len(walk.files)
    for done, path in enumerate(walk.files):
        if progress is not None:
            progress(done, total)
        collector.read(path)
    if progress is not None:
        progress(total, total)
    found = collector.result()
    logger.info(
        "discovered %d studies, %d series, %d image files; skipped %d of %d entries %s in %.0f ms",
        len(found.studies),
        sum(len(s.series) for s in found.studies),
        sum(len(se.instances) for s in found.studies for se in s.series),
        found.n_skipped,
        found.files_seen,
        dict(sorted(found.skipped.items())),
        (time.perf_counter() - t0) * 1e3,
    )
    return found


class Collector:
    """Studies built up one file at a time (the core of :func:`discover_studies` and of the
    streaming discovery in :mod:`medfuse.runtime.dicom.streaming`).

    ``bad_folders``: folders that could not be listed (counted, and warned on the studies
    beside them).
    """

    def __init__(self, bad_folders: list[Path] | None = None) -> None:
        bad = list(bad_folders or [])
        self.skipped: Counter[str] = Counter({"unreadable_folder": len(bad)} if bad else {})
        self.problems: list[Path] = bad
        self.suspects: list[Path] = []  # not DICOM, but named or sized like a lost slice
        self.tree: dict[str, dict[str, _SeriesParts]] = defaultdict(dict)  # study → series
        self.files_seen = 0

    def read(self, path: str | Path, *, only: str | None = None) -> str | None:
        """Read one file's header into the tree; the StudyInstanceUID it joined, if any.

        With ``only``, the file is read again for study ``only`` alone (its study was let go
        with :meth:`forget` and is being rebuilt): a file of another study, or one that is
        skipped, changes nothing, and nothing is counted twice.
        """
        path = Path(path)
        if only is None:
            self.files_seen += 1
        try:
            study_uid, series_uid, modality, inst, for_uid = _read_header(path)
        except _Skip as skip:
            if only is not None:
                if (
                    skip.reason in ("unreadable", "no_pixels")
                    and skip.uids
                    and skip.uids[0] == only
                ):
                    self._unreadable(skip.uids)
                    return only
                return None
            self.skipped[skip.reason] += 1
            if skip.reason == "not_dicom" and _lost_slice(path):
                self.suspects.append(path)
            if skip.reason in ("unreadable", "no_pixels"):
                if skip.uids is None:
                    self.problems.append(path)
                else:
                    self._unreadable(skip.uids)
                    return skip.uids[0]
            return None
        if only is not None and study_uid != only:
            return None
        parts = self.tree[study_uid].setdefault(series_uid, _SeriesParts(modality, for_uid))
        if not parts.instances:
            parts.modality, parts.frame_of_reference = modality, for_uid
        parts.instances.append(inst)
        if for_uid:
            parts.frames_of_reference.add(for_uid)
        return study_uid

    def _unreadable(self, uids: tuple[str, str]) -> None:
        """Count a file that failed to read on the series it names."""
        self.tree[uids[0]].setdefault(uids[1], _SeriesParts("", None)).unreadable += 1

    def forget(self, uid: str) -> None:
        """Let go of study ``uid``'s files (handed on; :meth:`read` with ``only`` rebuilds
        it). Skip counts, problems and suspects are kept."""
        self.tree.pop(uid, None)

    def study(self, uid: str) -> Study:
        """The study ``uid`` as the files read so far make it."""
        return _study(uid, self.tree[uid], self.problems, self.suspects)

    def result(self) -> Discovery:
        """Everything read so far, studies sorted by UID."""
        return Discovery(
            studies=tuple(self.study(uid) for uid in sorted(self.tree)),
            skipped=MappingProxyType(dict(self.skipped)),
            files_seen=self.files_seen,
        )


def _study(
    uid: str, series: dict[str, _SeriesParts], problems: list[Path], suspects: list[Path]
) -> Study:
    """One Study from its series' parts. A series none of whose files could be read is kept
    (no instances, ``unreadable_files`` > 0): the study is reported, never lost. A file that
    repeats an instance's SOPInstanceUID (a copy) is left out and counted."""
    built = []
    for series_uid, parts in sorted(series.items()):
        instances, duplicates = _unique(parts.instances)
        built.append(
            Series(
                uid=series_uid,
                modality=parts.modality,
                instances=instances,
                frame_of_reference_uid=parts.frame_of_reference,
                number=_series_number(parts.instances),
                unreadable_files=parts.unreadable,
                duplicate_files=duplicates,
                mixed_frame_of_reference=len(parts.frames_of_reference) > 1,
            )
        )
    files = [i.path for s in built for i in s.instances]
    nearby = _nearby(files, problems) if problems and files else 0
    if suspects and files:
        nearby += _inside(files, suspects)
    patients = len({i.patient for s in built for i in s.instances if i.patient})
    return Study(uid=uid, series=tuple(built), unreadable_nearby=nearby, patients=max(patients, 1))


def _unique(instances: list[Instance]) -> tuple[tuple[Instance, ...], int]:
    """Instances sorted by path without exact copies (same SOPInstanceUID, same bytes: the
    first is kept); and how many were left out. Files that share a SOPInstanceUID but differ
    are all kept (the series' consistency checks then judge them)."""
    kept: list[Instance] = []
    first: dict[str, Instance] = {}
    for inst in sorted(instances, key=lambda i: str(i.path)):
        uid = inst.sop_instance_uid
        if uid and uid in first and _same_bytes(first[uid].path, inst.path):
            continue
        first.setdefault(uid, inst)
        kept.append(inst)
    return tuple(kept), len(instances) - len(kept)


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


_SLICE_SUFFIXES = frozenset({"", ".dcm", ".dicom", ".ima", ".img"})


def _lost_slice(path: Path) -> bool:
    """Whether a file that is not DICOM may be a damaged slice: empty, or named like one
    (``.dcm``, ``.ima``, no suffix) rather than a side file (``notes.txt``, ``thumbs.db``)."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = False
    return empty or path.suffix.lower() in _SLICE_SUFFIXES


def _inside(files: list[Path], suspects: list[Path]) -> int:
    """How many of ``suspects`` lie in a folder holding one of the study's ``files``."""
    folders = {f.parent for f in files}
    return sum(1 for p in suspects if p.parent in folders)


def _series_number(instances: list[Instance]) -> int | None:
    numbers = {i.series_number for i in instances if i.series_number is not None}
    return min(numbers) if numbers else None
