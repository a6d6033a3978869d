"""Header facts recorded at discovery, and reading an instance's pixels with them.

Discovery parses every header anyway (to group files into series). For a plain uncompressed
file it also records, in :class:`~medfuse.runtime.dicom.study.HeaderFacts`, the few values
loading needs (computed by the same functions loading uses), where the Pixel Data value lies,
and a digest of every other byte of the file, so :func:`~medfuse.runtime.dicom.load_volume`
reads the file's bytes once and decodes nothing but the pixel values instead of parsing the
header a second time.

The facts are recorded only when loading through the plain path (``open_dataset`` →
``validate_image`` → ``decode``) would succeed with the same values, and they are used only
while the digest still matches; otherwise loading parses the files, so values and errors never
depend on which path ran.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.filereader import data_element_generator
from pydicom.uid import UID

from medfuse.runtime.dicom._read import (
    correct_unused_bits,
    expected_length,
    header_int,
    length_fits,
    native_dtype,
    native_order,
    validate_header,
)
from medfuse.runtime.dicom.limits import DEFLATED
from medfuse.runtime.dicom.processing import Lut, Rescale, modality_transform
from medfuse.runtime.dicom.study import HeaderFacts, Instance

__all__ = [
    "HEADER_PEEK",
    "NativeReader",
    "header_facts",
    "pixel_length_fits",
    "rescale_of",
]

_IMPLICIT_LE = "1.2.840.10008.1.2"
_RLE = "1.2.840.10008.1.2.5"
PIXEL_TAG_LE = b"\xe0\x7f\x10\x00"
PIXEL_TAG_BE = b"\x7f\xe0\x00\x10"
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
# an element header is at most this long: tag (4) + VR (2) + reserved (2) + length (4)
HEADER_PEEK = 12


def header_facts(
    ds: Dataset,
    fh: BinaryIO,
    element_offset: int,
    head: bytes,
    shape: tuple[int, int, int],
) -> HeaderFacts | None:
    """The facts loading needs from a header read with ``stop_before_pixels``, or None.

    Parameters
    ----------
    ds:
        The header, read from ``fh`` with ``stop_before_pixels=True``.
    fh:
        The open file (its position is moved).
    element_offset:
        ``fh.tell()`` right after the header was read: where the Pixel Data element starts.
    head:
        Up to :data:`HEADER_PEEK` bytes read at ``element_offset``.
    shape:
        ``(frames, rows, columns)`` as discovery recorded them.

    Returns
    -------
    HeaderFacts or None
        None when loading must parse the file itself: compressed, deflated or 1-bit data,
        per-frame functional groups, a Modality LUT Sequence, any attribute that loading would
        reject or that cannot be read, Pixel Data shorter than the header needs or cut off by
        the end of the file, or elements after it that would make a full read fail or replace
        a header element.
    """
    try:
        return _header_facts(ds, fh, element_offset, head, shape)
    except Exception:  # any malformed value: loading parses the file and reports it
        return None


def _header_facts(
    ds: Dataset, fh: BinaryIO, element_offset: int, head: bytes, shape: tuple[int, int, int]
) -> HeaderFacts | None:
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:
        return None
    tsyntax = UID(str(meta.TransferSyntaxUID))
    if str(tsyntax) == _RLE:
        return _rle_facts(ds, fh, element_offset, head, shape)
    order = native_order(tsyntax)
    if order is None or str(tsyntax) == DEFLATED:
        return None
    implicit, little = ds.original_encoding
    if implicit != (str(tsyntax) == _IMPLICIT_LE) or little != (order == "<"):
        return None  # pydicom read the file in another encoding than it declares
    if "PerFrameFunctionalGroupsSequence" in ds:
        return None
    if validate_header(ds) != shape:
        return None
    bits = header_int(ds, "BitsAllocated")
    if bits not in (8, 16, 32):
        return None
    # the same expressions as decode's native path
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    stored = int(ds.get("BitsStored", bits) or bits)
    transform = modality_transform(ds, 0)
    if isinstance(transform, Lut):
        return None
    element = _element_header(head, implicit=implicit, little=little)
    if element is None:
        return None
    length = int.from_bytes(element[-4:], "little" if little else "big")
    frames, rows, cols = shape
    # decode refuses a length other than pydicom's count (plus one pad byte), then takes
    # frames × rows × columns
    if (
        length == _UNDEFINED_LENGTH
        or not length_fits(length, expected_length(ds))
        or length < frames * rows * cols * (bits // 8)
    ):
        return None
    size = os.fstat(fh.fileno()).st_size
    start = element_offset + len(element)
    end = start + length
    if end > size:
        return None
    digest = _outside_digest(fh, start, end, size, implicit=implicit, little=little)
    if digest is None:
        return None
    return HeaderFacts(
        file_size=size,
        pixel_offset=start,
        pixel_length=length,
        digest=digest,
        dtype=sys.intern(native_dtype(order, bits, signed).str),
        bits_stored=stored,
        rescale=None if transform is None else (transform.slope, transform.intercept),
    )


def _rle_facts(
    ds: Dataset, fh: BinaryIO, element_offset: int, head: bytes, shape: tuple[int, int, int]
) -> HeaderFacts | None:
    """Facts of an RLE Lossless file: the encapsulated Pixel Data (its items walked by their
    headers), elements after it checked and digested like the native path's; one fragment per
    frame is checked when it is read."""
    implicit, little = ds.original_encoding
    if implicit or not little or "PerFrameFunctionalGroupsSequence" in ds:
        return None
    if validate_header(ds) != shape or int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        return None
    bits = header_int(ds, "BitsAllocated")
    if bits not in (8, 16):
        return None
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    stored = int(ds.get("BitsStored", bits) or bits)
    transform = modality_transform(ds, 0)
    if isinstance(transform, Lut):
        return None
    if head[:12] != PIXEL_TAG_LE + b"OB\x00\x00\xff\xff\xff\xff":
        return None  # not encapsulated with an undefined length
    size = os.fstat(fh.fileno()).st_size
    start = element_offset + 12
    end = _items_end(fh, start, size)
    if end is None:
        return None
    digest = _outside_digest(fh, start, end, size, implicit=False, little=True)
    if digest is None:
        return None
    return HeaderFacts(
        file_size=size,
        pixel_offset=start,
        pixel_length=end - start,
        digest=digest,
        dtype=sys.intern(native_dtype("<", bits, signed).str),
        bits_stored=stored,
        rescale=None if transform is None else (transform.slope, transform.intercept),
        encoding="rle",
    )


def _outside_digest(
    fh: BinaryIO, start: int, end: int, size: int, *, implicit: bool, little: bool
) -> int | None:
    """CRC-32 of the file outside its pixel bytes ``[start, end)``: the header, and the
    elements after Pixel Data (trailing padding, signatures), which a full read parses too, so
    they are checked like the header; None when those are not plain elements."""
    fh.seek(0)
    digest = zlib.crc32(_read_exactly(fh, start))
    if end < size:
        fh.seek(end)
        trailer = _read_exactly(fh, size - end)
        if not _plain_trailer(trailer, implicit=implicit, little=little):
            return None
        digest = zlib.crc32(trailer, digest)
    return digest


def _items_end(fh: BinaryIO, pos: int, size: int) -> int | None:
    """Where the encapsulated items starting at ``pos`` end (after the sequence delimiter),
    reading only the 8-byte item headers; None when they are not well formed."""
    while pos + 8 <= size:
        fh.seek(pos)
        group, elem, length = struct.unpack("<HHI", _read_exactly(fh, 8))
        pos += 8
        if (group, elem) == (0xFFFE, 0xE0DD):
            return pos
        if (group, elem) != (0xFFFE, 0xE000) or length == _UNDEFINED_LENGTH:
            return None
        pos += length
    return None


def _rle_frames(
    buf: bytes | bytearray, facts: HeaderFacts, frames: int, rows: int, cols: int
) -> NDArray[Any] | None:
    """Decode the RLE fragments of the Pixel Data value (one per frame, then the sequence
    delimiter), or None when the layout is anything else."""
    from rle.utils import decode_frame  # type: ignore[attr-defined]  # pylibjpeg-rle

    dtype = np.dtype(facts.dtype)
    end = facts.pixel_offset + facts.pixel_length
    pos = facts.pixel_offset
    fragments: list[tuple[int, int]] = []
    first = True
    while pos + 8 <= end:
        group, elem, length = struct.unpack_from("<HHI", buf, pos)
        pos += 8
        if (group, elem) == (0xFFFE, 0xE0DD):
            break
        if (group, elem) != (0xFFFE, 0xE000) or pos + length > end:
            return None
        if not first:
            fragments.append((pos, length))
        first = False  # the first item is the Basic Offset Table
        pos += length
    else:
        return None
    if pos != end or len(fragments) != frames:
        return None
    out = np.empty((frames, rows, cols), dtype=dtype)
    mv = memoryview(buf)
    try:
        for f, (at, length) in enumerate(fragments):
            decoded = decode_frame(
                bytes(mv[at : at + length]), rows * cols, dtype.itemsize * 8, "<"
            )
            if len(decoded) != rows * cols * dtype.itemsize:
                return None
            out[f] = np.frombuffer(decoded, dtype=dtype).reshape(rows, cols)
    except ValueError:  # a damaged fragment: the full read reports it
        return None
    finally:
        mv.release()
    return out


def pixel_length_fits(ds: Dataset, head: bytes, available: int) -> bool:
    """Whether an uncompressed file's Pixel Data value has the length its header promises.

    ``head`` holds the Pixel Data element's first bytes (as :func:`header_facts` takes them) and
    ``available`` the bytes from there to the end of the file. True when the element's length
    is exactly Rows × Columns × Frames × Samples × BitsAllocated / 8, or one byte more when that
    is odd (the padding to an even length), and the file holds the whole value; also True
    whenever it cannot be told from the header alone (compressed or deflated data, an undefined
    or unreadable length) — loading then checks it.
    """
    try:
        tsyntax = str(ds.file_meta.TransferSyntaxUID)
        order = native_order(UID(tsyntax))
        if order is None or tsyntax == DEFLATED:
            return True
        implicit, little = ds.original_encoding
        element = _element_header(head, implicit=bool(implicit), little=bool(little))
        if element is None:
            return True
        length = int.from_bytes(element[-4:], "little" if little else "big")
        if length == _UNDEFINED_LENGTH:
            return True
        return length_fits(length, expected_length(ds)) and len(element) + length <= available
    except Exception:  # a malformed header: loading reports it
        return True


def _plain_trailer(trailer: bytes, *, implicit: bool, little: bool) -> bool:
    """Whether the elements after Pixel Data leave a full read as a header-only read leaves it.

    A full read goes on with the same element generator past Pixel Data: any error there
    (``EOFError`` even empties the whole dataset) or an element sorted before Pixel Data
    (it would replace the header's element of that tag) makes the full read differ.
    """
    elements = data_element_generator(io.BytesIO(trailer), implicit, little)
    return all(int(elem.tag) > _PIXEL_DATA for elem in elements)


def _read_exactly(fh: BinaryIO, n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise EOFError("the file is shorter than its size said")
    return data


def _element_header(head: bytes, *, implicit: bool, little: bool) -> bytes | None:
    """The Pixel Data element's tag (+ VR) + 32-bit length from ``head``, or None."""
    if head[:4] != (PIXEL_TAG_LE if little else PIXEL_TAG_BE):
        return None
    if implicit:
        return head[:8] if len(head) >= 8 else None
    if len(head) < 12 or head[4:6] not in (b"OB", b"OW") or head[6:8] != b"\x00\x00":
        return None
    return head[:12]


class NativeReader:
    """Reads whole files with header facts into one reused buffer and checks their digest.

    An array returned by :meth:`read` is a read-only view of that buffer: it is valid until the
    next call, so consume (copy or convert) it before reading the next instance.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def read(self, inst: Instance) -> NDArray[Any] | None:
        """Stored values ``(frames, rows, columns)`` of ``inst``, or None if the file changed.

        None means: no facts, the file could not be opened or read, its size differs, or its
        bytes outside the Pixel Data value no longer have the recorded digest. The caller then
        parses the file, which reports what is wrong with it.
        """
        facts = inst.facts
        if facts is None:
            return None
        size = facts.file_size
        if len(self._buf) < size + 1:
            self._buf = bytearray(size + 1)
        view = memoryview(self._buf)[: size + 1]
        try:
            with open(inst.path, "rb", buffering=0) as fh:
                got = 0
                while got <= size:  # one byte past the recorded size must read as the end
                    n = fh.readinto(view[got:])
                    if not n:
                        break
                    got += n
        except OSError:
            return None
        finally:
            view.release()
        if got != size:
            return None
        buf = self._buf
        end = facts.pixel_offset + facts.pixel_length
        with memoryview(buf) as mv:
            digest = zlib.crc32(mv[: facts.pixel_offset])
            if end < size:
                digest = zlib.crc32(mv[end:size], digest)
        if digest != facts.digest:
            return None
        if facts.encoding == "rle":
            decoded = _rle_frames(buf, facts, inst.frames, inst.rows, inst.columns)
            return None if decoded is None else correct_unused_bits(decoded, facts.bits_stored)
        count = inst.frames * inst.rows * inst.columns
        arr = np.frombuffer(
            buf, dtype=np.dtype(facts.dtype), count=count, offset=facts.pixel_offset
        )
        arr = correct_unused_bits(arr, facts.bits_stored)
        return arr.reshape(inst.frames, inst.rows, inst.columns)


def rescale_of(facts: HeaderFacts) -> Rescale | None:
    """The recorded Modality LUT as the pipeline's :class:`Rescale` (None: no rescale)."""
    return None if facts.rescale is None else Rescale(*facts.rescale)
