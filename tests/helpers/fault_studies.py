"""Series-level faults planted in synthetic studies (real DICOM files, changed as damage would).

Each function takes one synthetic patient folder (``<patient>/<study>/<series>/<files>``, as
``medfuse.synthetic.generate_studies`` writes them) and damages it in one way. Shared by the
fault tests of ``medfuse run`` and ``medfuse scan``.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pydicom

from helpers.screening_fixtures import modality_of


def series_dirs(patient: Path) -> dict[str, Path]:
    """Modality → series folder of one synthetic patient."""
    out: dict[str, Path] = {}
    for folder in sorted(p for p in patient.rglob("*") if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.is_file())
        if files:
            mod = modality_of(files[0])
            if mod:
                out[mod] = folder
    return out


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def study_uid(patient: Path) -> str:
    """The patient's StudyInstanceUID as pydicom reads it (a damaged one without complaint)."""
    first = next(p for p in sorted(patient.rglob("*")) if p.is_file())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns, quoting the value, on invalid UIDs
        return str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)


def keep_only(patient: Path, *modalities: str) -> None:
    """Remove every series of the patient but those of ``modalities``."""
    for mod, folder in series_dirs(patient).items():
        if mod not in modalities:
            shutil.rmtree(folder)


def relabel_one_file(patient: Path, modality: str, new: str) -> None:
    """Give one file of the ``modality`` series another Modality (files of a series disagree)."""
    path = files_of(series_dirs(patient)[modality])[3]
    ds = pydicom.dcmread(path)
    ds.Modality = new
    ds.save_as(path)


def lengthen_pixel_data(patient: Path, modality: str) -> None:
    """Append two bytes to one file's Pixel Data (longer than Rows × Columns × bits says)."""
    path = files_of(series_dirs(patient)[modality])[2]
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData + b"\x00\x00"
    ds.save_as(path)


def cut_header_after_series_uid(patient: Path, modality: str) -> Path:
    """Cut one file of the series inside its header, after its Series Instance UID (the slice
    can be told to belong to the series, but not read)."""
    path = files_of(series_dirs(patient)[modality])[5]
    data = path.read_bytes()
    tag = data.find(b"\x20\x00\x0e\x00")  # (0020,000E), explicit VR little endian
    assert tag > 0
    path.write_bytes(data[: tag + 8 + 64 + 5])  # well past the UID, inside a later element
    return path


def deep_unreadable_folder(parent: Path) -> Path:
    """A folder nested so deep that listing it fails (ENAMETOOLONG) — for any user, root too."""
    fd = os.open(parent, os.O_RDONLY)
    name = "n" * 250
    try:
        for _ in range(20):
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    return parent / name


def replace_study_uid_bytes(patient: Path, last: bytes) -> None:
    """Make the patient's StudyInstanceUID end in the byte ``last`` (a non-ASCII character in a
    damaged header), in every file, keeping every length."""
    old = study_uid(patient).encode("ascii")
    new = old[:-1] + last
    for path in sorted(p for p in patient.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert old in data
        path.write_bytes(data.replace(old, new))


def set_header_value(patient: Path, modality: str, keyword: str, value: str) -> None:
    """Write ``value`` into ``keyword`` of every file of the ``modality`` series."""
    for path in files_of(series_dirs(patient)[modality]):
        ds = pydicom.dcmread(path)
        setattr(ds, keyword, value)
        ds.save_as(path)
