"""A fast reader for the few header elements discovery needs, with pydicom as the fallback.

Discovery reads every file's header. pydicom parses and converts every element, which costs
about as much as everything else a study needs (decode, resample, inference) together. This
reader walks the elements of a plain header with ``struct`` and keeps the raw bytes of the ~30
attributes discovery looks at; :class:`HeaderView` then answers the same questions a pydicom
``Dataset`` answers (``get``, ``in``, ``file_meta``, ``original_encoding``), so discovery's own
code (:mod:`.discovery`, :mod:`._facts`, :mod:`.geometry`, :mod:`.processing`) runs unchanged on
it and gives the same instances.

It declines — :func:`read_header_view` returns ``None`` and pydicom reads the file — whenever a
file is anything but plain: no ``DICM`` preamble, big-endian or deflated transfer syntax, an
explicit-VR element whose VR is not two capitals, a wanted attribute with an unexpected VR or
a value that is not plain ASCII or does not parse, functional-group or Modality LUT sequences
(per-frame values), a header that ends before Pixel Data, or a header over
:data:`MAX_HEADER_BYTES`. A test compares both paths on every real test file.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

__all__ = ["MAX_HEADER_BYTES", "HeaderView", "read_header_view"]

MAX_HEADER_BYTES = 1 << 20  # larger headers (huge private blobs) go to pydicom
_CHUNK = 8192
_PIXEL_DATA = 0x7FE00010
_ITEM, _ITEM_END, _SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset(
    (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV")
)
_SYNTAXES = {  # transfer syntax → implicit VR (little endian, not deflated)
    "1.2.840.10008.1.2": True,
    "1.2.840.10008.1.2.1": False,
}
_ENCAPSULATED_PREFIX = "1.2.840.10008.1.2.4."  # JPEG family: explicit VR little endian
_RLE = "1.2.840.10008.1.2.5"

# keyword → (tag, VR) of every attribute discovery reads
_WANTED: dict[str, tuple[int, str]] = {
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "Modality": (0x00080060, "CS"),
    "PatientID": (0x00100020, "LO"),
    "SliceThickness": (0x00180050, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "ImagerPixelSpacing": (0x00181164, "DS"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "SeriesNumber": (0x00200011, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"),
    "ImageOrientationPatient": (0x00200037, "DS"),
    "FrameOfReferenceUID": (0x00200052, "UI"),
    "SamplesPerPixel": (0x00280002, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "NumberOfFrames": (0x00280008, "IS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "HighBit": (0x00280102, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "WindowCenter": (0x00281050, "DS"),
    "WindowWidth": (0x00281051, "DS"),
    "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
    "VOILUTFunction": (0x00281056, "CS"),
    "PresentationLUTShape": (0x20500020, "CS"),
}
_BY_TAG = {tag: (kw, vr) for kw, (tag, vr) in _WANTED.items()}
# attributes whose presence alone sends a file to pydicom (per-frame values, LUTs, DICOMDIR)
_DECLINE = frozenset((0x00041220, 0x00283000, 0x52009229, 0x52009230, 0x7FE00008, 0x7FE00009))
# presence-only keywords discovery asks about
_PRESENCE = {
    "DirectoryRecordSequence": 0x00041220,
    "ModalityLUTSequence": 0x00283000,
    "PerFrameFunctionalGroupsSequence": 0x52009230,
    "SharedFunctionalGroupsSequence": 0x52009229,
    "PixelData": _PIXEL_DATA,
}


class _Decline(Exception):
    """The file is not plain enough for this reader."""


class _FileMeta:
    """The file meta group as discovery asks about it (``get``, ``in``, ``TransferSyntaxUID``)."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def get(self, keyword: str, default: Any = None) -> Any:
        return self._values.get(keyword, default)

    def __contains__(self, keyword: object) -> bool:
        return keyword in self._values

    def __len__(self) -> int:
        return len(self._values)

    @property
    def TransferSyntaxUID(self) -> Any:  # pydicom's keyword
        from pydicom.uid import UID

        return UID(self._values["TransferSyntaxUID"])


@dataclass(frozen=True)
class HeaderView:
    """The wanted attributes of one header, answering like a pydicom ``Dataset`` would.

    Attributes
    ----------
    file_meta:
        TransferSyntaxUID and MediaStorageSOPClassUID.
    original_encoding:
        ``(implicit VR, little endian)``.
    pixel_offset:
        File offset of the Pixel Data element (its tag), where pydicom's header read stops.
    head:
        The bytes at ``pixel_offset`` (the element's tag, VR and length).
    """

    file_meta: _FileMeta
    original_encoding: tuple[bool, bool]
    values: dict[str, Any]
    tags: frozenset[int]
    pixel_offset: int
    head: bytes
    elements: int

    def get(self, keyword: str, default: Any = None) -> Any:
        value = self.values.get(keyword)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        if isinstance(key, int):
            return key in self.tags
        if key in self.values:
            return True
        tag = _PRESENCE.get(str(key))
        return tag is not None and tag in self.tags

    def __len__(self) -> int:
        return self.elements


class _Buffer:
    """The file's bytes from offset 0, read in chunks on demand (at most MAX_HEADER_BYTES)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.data = bytearray()
        self.eof = False

    def need(self, end: int) -> None:
        """Make ``data[:end]`` available or decline (past the end of the file or the cap)."""
        while len(self.data) < end:
            if self.eof or end > MAX_HEADER_BYTES:
                raise _Decline
            chunk = self.fh.read(max(_CHUNK, end - len(self.data)))
            if not chunk:
                self.eof = True
                raise _Decline
            self.data += chunk


def read_header_view(fh: BinaryIO) -> HeaderView | None:
    """Read ``fh``'s header up to Pixel Data; ``None`` when the file needs pydicom.

    The file position afterwards is unspecified (callers seek).
    """
    try:
        return _read(_Buffer(fh))
    except (_Decline, struct.error, UnicodeDecodeError, ValueError):
        return None


def _read(buf: _Buffer) -> HeaderView:
    buf.need(132 + 12)
    if bytes(buf.data[128:132]) != b"DICM":
        raise _Decline
    meta, pos = _file_meta(buf, 132)
    tsyntax = meta.get("TransferSyntaxUID", "")
    if tsyntax in _SYNTAXES:
        implicit = _SYNTAXES[tsyntax]
    elif tsyntax.startswith(_ENCAPSULATED_PREFIX) or tsyntax == _RLE:
        implicit = False
    else:
        raise _Decline  # big endian, deflated, private or missing
    values: dict[str, Any] = {}
    tags: set[int] = set()
    unpack = struct.unpack_from
    by_tag, decline, long_vrs = _BY_TAG, _DECLINE, _LONG_VRS
    data = buf.data
    while True:  # the top-level elements, inline: this loop is discovery's hot path
        start = pos
        if pos + 12 > len(data):
            buf.need(pos + 12 if not buf.eof else pos + 8)
            data = buf.data
        group, elem = unpack("<HH", data, pos)
        tag = group << 16 | elem
        vr: str | None = None
        if implicit or group == 0xFFFE:
            (length,) = unpack("<L", data, pos + 4)
            pos += 8
        else:
            raw_vr = bytes(data[pos + 4 : pos + 6])
            if not (65 <= raw_vr[0] <= 90 and 65 <= raw_vr[1] <= 90):
                raise _Decline  # not two capitals: an encoding pydicom guesses at
            vr = raw_vr.decode("ascii")
            if raw_vr in long_vrs:
                (length,) = unpack("<L", data, pos + 8)
                pos += 12
            else:
                (length,) = unpack("<H", data, pos + 6)
                pos += 8
        if tag == _PIXEL_DATA:
            buf.need(start + 12)
            return HeaderView(
                file_meta=_FileMeta(meta),
                original_encoding=(implicit, True),
                values=values,
                tags=frozenset(tags),
                pixel_offset=start,
                head=bytes(buf.data[start : start + 12]),
                elements=len(tags) + 1,
            )
        if group == 0xFFFE or tag in decline:
            raise _Decline  # a stray item or delimiter; per-frame groups, LUTs, DICOMDIR
        tags.add(tag)
        if length == _UNDEFINED:
            pos = _skip_sequence(buf, pos, implicit)
            data = buf.data
            continue
        wanted = by_tag.get(tag)
        if wanted is not None:
            keyword, want_vr = wanted
            if vr is not None and vr != want_vr:
                raise _Decline
            if pos + length > len(data):
                buf.need(pos + length)
                data = buf.data
            values[keyword] = _convert(bytes(data[pos : pos + length]), want_vr)
        pos += length


def _file_meta(buf: _Buffer, pos: int) -> tuple[dict[str, str], int]:
    """Group 0002 (always explicit VR little endian): its UIDs and the offset after it."""
    meta: dict[str, str] = {}
    while True:
        buf.need(pos + 8)
        group, elem = struct.unpack_from("<HH", buf.data, pos)
        if group != 0x0002:
            return meta, pos
        vr = bytes(buf.data[pos + 4 : pos + 6])
        if vr in _LONG_VRS:
            buf.need(pos + 12)
            (length,) = struct.unpack_from("<L", buf.data, pos + 8)
            value = pos + 12
        else:
            (length,) = struct.unpack_from("<H", buf.data, pos + 6)
            value = pos + 8
        if length == _UNDEFINED:
            raise _Decline
        buf.need(value + length)
        if elem == 0x0010:
            meta["TransferSyntaxUID"] = _text(bytes(buf.data[value : value + length]))
        elif elem == 0x0002:
            meta["MediaStorageSOPClassUID"] = _text(bytes(buf.data[value : value + length]))
        pos = value + length


def _skip_sequence(buf: _Buffer, pos: int, implicit: bool) -> int:
    """The offset after a sequence of undefined length starting at ``pos`` (its first item)."""
    while True:
        buf.need(pos + 8)
        group, elem, length = struct.unpack_from("<HHL", buf.data, pos)
        tag = group << 16 | elem
        pos += 8
        if tag == _SEQ_END:
            return pos
        if tag != _ITEM:
            raise _Decline
        if length != _UNDEFINED:
            pos += length
            continue
        pos = _skip_item(buf, pos, implicit)


def _skip_item(buf: _Buffer, pos: int, implicit: bool) -> int:
    """The offset after an item of undefined length whose elements start at ``pos``."""
    while True:
        buf.need(pos + 8)
        group, elem = struct.unpack_from("<HH", buf.data, pos)
        tag = group << 16 | elem
        if tag == _ITEM_END:
            return pos + 8
        if implicit:
            (length,) = struct.unpack_from("<L", buf.data, pos + 4)
            pos += 8
        else:
            raw_vr = bytes(buf.data[pos + 4 : pos + 6])
            if not (65 <= raw_vr[0] <= 90 and 65 <= raw_vr[1] <= 90):
                raise _Decline
            if raw_vr in _LONG_VRS:
                buf.need(pos + 12)
                (length,) = struct.unpack_from("<L", buf.data, pos + 8)
                pos += 12
            else:
                (length,) = struct.unpack_from("<H", buf.data, pos + 6)
                pos += 8
        pos = _skip_sequence(buf, pos, implicit) if length == _UNDEFINED else pos + length


def _text(raw: bytes) -> str:
    """A plain ASCII value without its padding (trailing NULs and spaces), as pydicom strips it."""
    text = raw.decode("ascii").rstrip("\x00 ")
    if text[:1] == " " or not text.isprintable():
        raise _Decline
    return text


def _convert(raw: bytes, vr: str) -> Any:
    """A value as pydicom gives it: str (UI, CS, LO), int (IS, US), float or list of floats (DS)."""
    if vr == "US":
        if len(raw) != 2:
            raise _Decline  # empty or multi-valued: pydicom's own handling
        return struct.unpack("<H", raw)[0]
    text = _text(raw)
    if vr == "LO":
        return text or None
    if vr in ("UI", "CS"):
        if "\\" in text:
            raise _Decline
        return text or None
    if not text:
        return None
    parts = [p.strip() for p in text.split("\\")]
    if vr == "IS":
        if len(parts) != 1:
            raise _Decline
        return int(parts[0])
    floats = [float(p) for p in parts]  # DS
    if not all(math.isfinite(f) for f in floats):
        raise _Decline
    return floats[0] if len(floats) == 1 else floats
