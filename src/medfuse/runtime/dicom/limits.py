"""How large an image medfuse reads: one policy, checked before anything large is allocated.

A hostile or broken file can declare a huge image in a few bytes (a sparse 27000 × 27000 DX) or
hide one behind deflate (a 1 MB Deflated Explicit VR Little Endian file that inflates to
gigabytes). Both are refused with :class:`~medfuse.errors.OversizeDicomError` (reason code
``too_large`` in result records) *before* the pixels or the inflated data set exist in memory.

The caps (see docs/decisions.md):

- one frame at most :data:`MAX_FRAME_PIXELS` pixels (8192², about 3.6 times the largest
  flat-panel radiograph, 4300², and 128 times the largest preprocessing target of the reference
  model, 128²). Reading happens before a model is chosen (discovery, ``scan``), so the cap follows
  the largest clinical images, with room, rather than one model's recipe;
- one file at most :func:`max_image_bytes` of stored pixel values: 1 GiB (a 2000-slice
  512² CT in one enhanced file), and never more than a quarter of the memory available now (the
  pipeline holds a float32 copy and a resampled one beside it);
- a deflated file's data set may inflate to at most ``max_image_bytes() + 64 MiB`` (room for
  its header); the check inflates in 1 MiB steps and stops at the cap.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

from medfuse.errors import OversizeDicomError

__all__ = [
    "DEFLATED",
    "IMAGE_BYTES_CEILING",
    "MAX_FRAME_PIXELS",
    "check_deflated",
    "check_image_size",
    "max_image_bytes",
    "max_inflated_bytes",
    "oversize",
]

DEFLATED = "1.2.840.10008.1.2.1.99"
MAX_FRAME_PIXELS = 8192 * 8192
IMAGE_BYTES_CEILING = 1 << 30
_HEADER_ROOM = 64 << 20
_MIN_IMAGE_BYTES = 64 << 20  # a machine short of memory still reads ordinary images
_STEP = 1 << 20


def _available_memory() -> int | None:
    """MemAvailable from /proc/meminfo in bytes (None where there is no such file)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def max_image_bytes() -> int:
    """The most stored pixel bytes one file may decode to, here and now."""
    available = _available_memory()
    if available is None:
        return IMAGE_BYTES_CEILING
    return max(_MIN_IMAGE_BYTES, min(IMAGE_BYTES_CEILING, available // 4))


def max_inflated_bytes() -> int:
    """The most bytes a deflated file's data set may inflate to."""
    return max_image_bytes() + _HEADER_ROOM


def _mib(n: int) -> str:
    return f"{n / 1024**2:,.0f} MiB"


def oversize(frames: int, rows: int, cols: int, bits: int) -> str | None:
    """Why an image of this declared size is refused, or None when it is within the caps."""
    if rows * cols > MAX_FRAME_PIXELS:
        return (
            f"a frame of {rows} × {cols} pixels is larger than medfuse reads "
            f"({MAX_FRAME_PIXELS:,} pixels, 8192 × 8192); the file is damaged or not a "
            "radiological image"
        )
    need = frames * rows * cols * max(bits, 8) // 8
    if need <= _MIN_IMAGE_BYTES:
        return None  # below every cap: no need to ask how much memory is free
    cap = max_image_bytes()
    if need > cap:
        return (
            f"the image would decode to {_mib(need)} ({frames} × {rows} × {cols} × {bits} bits); "
            f"the limit here is {_mib(cap)} (1 GiB, or a quarter of the memory available)"
        )
    return None


def check_image_size(frames: int, rows: int, cols: int, bits: int) -> None:
    """Raise :class:`OversizeDicomError` when :func:`oversize` refuses the image."""
    why = oversize(frames, rows, cols, bits)
    if why is not None:
        raise OversizeDicomError(why)


def check_deflated(fh: BinaryIO) -> None:
    """Refuse a deflated file whose data set inflates beyond :func:`max_inflated_bytes`.

    ``fh`` is an open DICOM file; its position is restored. Files of any other transfer syntax,
    and files whose header cannot be read here (pydicom then reports them), pass unchecked.
    """
    start = fh.tell()
    try:
        offset = _deflated_start(fh)
        if offset is None:
            return
        fh.seek(offset)
        cap = max_inflated_bytes()
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        while not inflater.eof:
            chunk = fh.read(_STEP)
            if not chunk:
                break
            while chunk and not inflater.eof:  # bytes after the stream's end are not data
                try:
                    total += len(inflater.decompress(chunk, _STEP))
                except zlib.error:
                    return  # corrupt stream: pydicom reports it
                if total > cap:
                    raise OversizeDicomError(
                        f"the deflated data set inflates to more than {_mib(cap)} (the limit "
                        "here: the largest image medfuse reads plus its header); the file is a "
                        "decompression bomb or damaged"
                    )
                chunk = inflater.unconsumed_tail
    finally:
        fh.seek(start)


def _deflated_start(fh: BinaryIO) -> int | None:
    """Where a deflated file's data set starts, or None when the file is not deflated."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    from medfuse.runtime.dicom._quiet import reading

    fh.seek(0)
    try:
        with reading():
            read_preamble(fh, False)
            meta = _read_file_meta_info(fh)
    except Exception:
        return None
    if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
        return None
    return fh.tell()
