"""Find the studies in a folder: Study → Series → Instance from headers only.

Any nesting, any file names (with or without ``.dcm``); files that are not usable DICOM images
are skipped and counted by reason, never fatal. Pixel data is not read.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medfuse.errors import UsageError
from medfuse.runtime.dicom._facts import HEADER_PEEK, header_facts
from medfuse.runtime.dicom._quiet import quiet_pydicom, reading
from medfuse.runtime.dicom._read import DICOMDIR_SOP_CLASS
from medfuse.runtime.dicom.geometry import (
    frame_orientation,
    frame_position,
    frame_spacing,
    imager_spacing,
)
from medfuse.runtime.dicom.study import Instance, Series, Study

__all__ = ["SKIP_REASONS", "Discovery", "discover_studies"]

logger = logging.getLogger(__name__)

SKIP_REASONS = ("not_dicom", "unreadable", "dicomdir", "non_image", "no_pixels", "missing_uid")
_PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"
_PIXEL_TAG_BE = b"\x7f\xe0\x00\x10"
_DEFLATED = "1.2.840.10008.1.2.1.99"


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover_studies` found.

    Attributes
    ----------
    studies:
        Studies sorted by their UID (a stable order; UIDs are never logged), each with its
        series sorted by UID and their instances sorted by file path.
    skipped:
        Reason → number of files skipped: ``not_dicom`` (no DICOM header, empty),
        ``unreadable`` (DICOM but could not be parsed, or an I/O error), ``dicomdir``,
        ``non_image`` (no Rows: RT plan, SR, ...), ``no_pixels`` (image header without
        PixelData), ``missing_uid`` (no Study/Series Instance UID).
    files_seen:
        Regular files looked at.
    """

    studies: tuple[Study, ...] = ()
    skipped: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    files_seen: int = 0

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _int(ds: Dataset, keyword: str, default: int | None) -> int | None:
    try:
        value = ds.get(keyword)
        return default if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return default


def _read_header(path: Path) -> tuple[str, str, str, Instance, str | None]:
    """(study uid, series uid, modality, instance, frame of reference uid) or raise _Skip."""
    try:
        with open(path, "rb") as fh, reading():
            try:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
            except InvalidDicomError as exc:
                raise _Skip("not_dicom") from exc
            except Exception as exc:
                raise _Skip("unreadable") from exc
            tsyntax = str(ds.file_meta.get("TransferSyntaxUID", ""))
            offset = fh.tell()
            head = b"" if tsyntax == _DEFLATED else fh.read(HEADER_PEEK)
            return _classify(path, fh, ds, tsyntax, offset, head)
    except _Skip:
        raise
    except Exception as exc:
        # an I/O error, or a malformed element pydicom only rejects when its value is read
        # (e.g. an unknown VR): this file is unreadable, the others are still discovered
        raise _Skip("unreadable") from exc


def _classify(
    path: Path, fh: BinaryIO, ds: Dataset, tsyntax: str, offset: int, head: bytes
) -> tuple[str, str, str, Instance, str | None]:
    """Classify one header (raise _Skip) and describe it as an Instance with its facts.

    ``head`` holds the bytes at ``offset``, where the header read stopped: the Pixel Data
    element's tag when the file has one.
    """
    marker = head[:4]
    if len(ds) == 0 and not ds.file_meta:
        raise _Skip("not_dicom")
    if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS or (
        "DirectoryRecordSequence" in ds
    ):
        raise _Skip("dicomdir")
    if len(ds) == 0:
        raise _Skip("unreadable")
    if "Rows" not in ds or "Columns" not in ds:
        raise _Skip("non_image")
    if tsyntax != _DEFLATED and marker not in (_PIXEL_TAG_LE, _PIXEL_TAG_BE):
        raise _Skip("no_pixels")
    study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
    series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    if not study_uid or not series_uid:
        raise _Skip("missing_uid")
    rows, cols = _int(ds, "Rows", None), _int(ds, "Columns", None)
    frames = _int(ds, "NumberOfFrames", 1)
    if not rows or not cols or not frames or rows < 0 or cols < 0 or frames < 0:
        raise _Skip("unreadable")
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
        facts=header_facts(ds, fh, offset, head, (frames, rows, cols)),
    )
    modality = str(ds.get("Modality", "") or "").strip().upper()
    for_uid = str(ds.get("FrameOfReferenceUID", "") or "").strip() or None
    return study_uid, series_uid, modality, instance, for_uid


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        out.extend(base / name for name in sorted(filenames))
    return out


def discover_studies(root: str | os.PathLike[str]) -> Discovery:
    """Group the DICOM image files under ``root`` into studies and series, reading headers only.

    Parameters
    ----------
    root:
        A folder (searched recursively, any file names) or a single file.

    Returns
    -------
    Discovery
        Studies (StudyInstanceUID) → series (SeriesInstanceUID, with modality) → instances
        (frames, rows, columns, InstanceNumber, position, orientation, spacing), in a
        deterministic order; plus the count of skipped files per reason. Colour images are
        listed (``Instance.is_grayscale`` is False); reading their pixels raises
        :class:`~medfuse.errors.UnsupportedDicomError`. Plain uncompressed images also carry
        :class:`~medfuse.runtime.dicom.study.HeaderFacts` (a few numbers, no patient data),
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
    files = _files(root)
    skipped: Counter[str] = Counter()
    # study → series → (modality, frame of reference, instances)
    tree: dict[str, dict[str, tuple[str, str | None, list[Instance]]]] = defaultdict(dict)
    for path in files:
        try:
            study_uid, series_uid, modality, inst, for_uid = _read_header(path)
        except _Skip as skip:
            skipped[skip.reason] += 1
            continue
        series = tree[study_uid].setdefault(series_uid, (modality, for_uid, []))
        series[2].append(inst)
    studies = tuple(
        Study(
            uid=study_uid,
            series=tuple(
                Series(
                    uid=series_uid,
                    modality=modality,
                    instances=tuple(sorted(insts, key=lambda i: str(i.path))),
                    frame_of_reference_uid=for_uid,
                )
                for series_uid, (modality, for_uid, insts) in sorted(tree[study_uid].items())
            ),
        )
        for study_uid in sorted(tree)
    )
    logger.info(
        "discovered %d studies, %d series, %d image files; skipped %d of %d files %s in %.0f ms",
        len(studies),
        sum(len(s.series) for s in studies),
        sum(len(se.instances) for s in studies for se in s.series),
        sum(skipped.values()),
        len(files),
        dict(sorted(skipped.items())),
        (time.perf_counter() - t0) * 1e3,
    )
    return Discovery(
        studies=studies, skipped=MappingProxyType(dict(skipped)), files_seen=len(files)
    )
