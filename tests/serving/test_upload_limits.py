"""``medfuse serve`` uploads over their caps are a typed per-study error, never a server OOM:
a 2 KB GNU sparse tar declaring 4 GiB, too many members, a member over the per-file cap."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from medfuse.errors import UploadTooLargeError
from medfuse.runtime.dicom import limits
from medfuse.serving import study as wire
from medfuse.serving.study import decode_study, materialize_study


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode("ascii") + b"\0"


def sparse_tar(real_size: int = 4 << 30) -> bytes:
    """A 2 KB old-GNU sparse tar: one member of ``real_size`` bytes, 512 of them stored."""
    header = bytearray(512)
    header[0:8] = b"huge.dcm"
    header[100:108] = _octal(0o644, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = _octal(512, 12)
    header[136:148] = _octal(0, 12)
    header[156:157] = b"S"
    header[257:265] = b"ustar  \0"
    header[386:398] = _octal(real_size - 512, 12)  # one sparse entry: the last 512 bytes
    header[398:410] = _octal(512, 12)
    header[483:495] = _octal(real_size, 12)
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}".encode("ascii") + b"\0 "
    return bytes(header) + b"\x01" * 512 + b"\0" * 1024


def _tar(files: dict[str, bytes], folders: int = 0) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(folders):
            info = tarfile.TarInfo(f"d{i}")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_sparse_tar_is_what_python_reads_as_4_gib() -> None:
    data = sparse_tar()
    assert len(data) == 2048
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        (member,) = tar.getmembers()
    assert member.issparse() and member.size == 4 << 30


def test_a_sparse_tar_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    with pytest.raises(UploadTooLargeError, match="sparse"):
        decode_study(sparse_tar())
    with pytest.raises(UploadTooLargeError, match="413"):
        materialize_study(sparse_tar(), tmp_path / "s")
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_too_many_members(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_TAR_MEMBERS", 5)
    assert len(decode_study(_tar({"a": b"x"}, folders=4))) == 1
    with pytest.raises(UploadTooLargeError, match="more than 5 members"):
        decode_study(_tar({"a": b"x"}, folders=5))


def test_a_member_over_the_per_file_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "max_image_bytes", lambda: 0)
    monkeypatch.setattr(limits, "_HEADER_ROOM", 1000)
    assert decode_study(_tar({"a": b"x" * 1000})) == [b"x" * 1000]
    with pytest.raises(UploadTooLargeError, match="1001 bytes, more than the 1000"):
        decode_study(_tar({"a": b"x" * 1001}))


def test_the_study_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_study_cap", lambda: 1500)
    with pytest.raises(UploadTooLargeError, match="expand to more than 1500 bytes"):
        decode_study(_tar({"a": b"x" * 1000, "b": b"y" * 1000}))


def test_preprocess_keeps_the_error_type() -> None:
    from medfuse.bundle import open_bundle
    from medfuse.bundle.reference import reference_bundle_path

    spec = open_bundle(reference_bundle_path()).spec
    with pytest.raises(UploadTooLargeError, match="study #1 of 1"):
        wire.preprocess_payloads([sparse_tar()], spec)
