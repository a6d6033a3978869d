"""The fast header reader gives discovery exactly the answer pydicom gives.

Every file pydicom and pydicom-data ship (real scanner files, odd encodings, damaged files) and
a synthetic study in every transfer syntax medfuse writes are classified twice: through the
fast reader and with it switched off. Instances, UIDs and skip reasons must be identical, and
the fast path must actually have been taken for the plain files (not a vacuous comparison).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pydicom
import pytest

from medfuse.runtime.dicom import discovery
from medfuse.runtime.dicom._header import read_header_view
from medfuse.synthetic.generate import generate_studies


def _classify(path: Path) -> tuple[object, ...]:
    try:
        return ("ok", *discovery._read_header(path))
    except discovery._Skip as skip:
        return ("skip", skip.reason, skip.uids)


def _both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[object, ...], ...]:
    fast = _classify(path)
    with monkeypatch.context() as m:
        m.setattr(discovery, "read_header_view", lambda fh: None)
        slow = _classify(path)
    return fast, slow


def _real_files() -> list[Path]:
    """The files pydicom and pydicom-data install (read from their folders: the lookup by
    pattern may try the network for files pydicom-data does not carry)."""
    folders = [Path(pydicom.__file__).parent / "data" / "test_files"]
    store = Path(pydicom.__file__).parent.parent / "data_store" / "data"  # pydicom-data
    if store.is_dir():
        folders.append(store)
    return sorted(p for folder in folders for p in folder.rglob("*") if p.is_file())


def _viewed(path: Path) -> bool:
    with path.open("rb") as fh:
        return read_header_view(fh) is not None


def test_real_files_classified_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    files = _real_files()
    assert len(files) > 100, "pydicom's test files are expected here"
    differ = []
    fast_ok = 0
    for path in files:
        fast, slow = _both(path, monkeypatch)
        if fast != slow:
            differ.append(path.name)
        elif fast[0] == "ok" and _viewed(path):
            fast_ok += 1
    assert differ == []
    assert fast_ok >= 50, f"the fast path read only {fast_ok} accepted real files"


def test_synthetic_study_classified_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_studies(tmp_path / "syn", 2, seed=3)
    files = sorted(p for p in (tmp_path / "syn").rglob("*.dcm"))
    assert files
    viewed = 0
    for path in files:
        fast, slow = _both(path, monkeypatch)
        assert fast == slow, path.name
        viewed += _viewed(path)
    assert viewed >= len(files) // 2


def test_declines_what_it_does_not_handle() -> None:
    assert read_header_view(io.BytesIO(b"not dicom at all" * 20)) is None
    assert read_header_view(io.BytesIO(b"\0" * 128 + b"DICM")) is None  # ends before pixel data
    # a group-2 element with a lower-case VR is not plain: pydicom decides
    odd = b"\0" * 128 + b"DICM" + struct.pack("<HH", 2, 0x10) + b"ui" + struct.pack("<H", 2) + b"1\0"
    assert read_header_view(io.BytesIO(odd)) is None
