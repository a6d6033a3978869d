"""Open one DICOM file, validate what the pixel pipeline needs, decode its pixels once.

Every error here is a medfuse :class:`~medfuse.errors.DicomError` whose message names the
problem and the offending *header* value (sizes, bit depths, transfer syntax names) but never
patient data or the file's path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from medfuse.errors import (
    CorruptDicomError,
    MedfuseError,
    MissingDecoderError,
    NotDicomError,
    OversizeDicomError,
    PixelDataLengthError,
    UnsupportedDicomError,
)
from medfuse.runtime.dicom._quiet import reading, redact
from medfuse.runtime.dicom.limits import check_deflated, check_image_size
from medfuse.runtime.results.redaction import PHOTOMETRIC_INTERPRETATIONS, defined_term

__all__ = [
    "check_decoder",
    "correct_unused_bits",
    "decode",
    "expected_length",
    "guarded",
    "header_int",
    "length_fits",
    "native_dtype",
    "native_order",
    "open_dataset",
    "validate_header",
    "validate_image",
]

logger = logging.getLogger(__name__)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# Elements longer than this are read from the file when first used, so the image-size caps
# (:mod:`.limits`) are checked before a huge Pixel Data value is in memory.
_DEFER_BYTES = 16 << 20
_PIXEL_PACKAGES = {
    # transfer syntax keyword prefix → what to pip install (licence-friendly choice first)
    "JPEG2000": "pylibjpeg-openjpeg",
    "HTJ2K": "pylibjpeg-openjpeg",
    "JPEGLS": "pyjpegls",
    "RLE": "pylibjpeg-rle",
    "JPEG": "pylibjpeg-libjpeg (GPLv3) or python-gdcm",
}


def open_dataset(path: str | os.PathLike[str], *, headers_only: bool = False) -> Dataset:
    """Read a DICOM file without ``force``; raise NotDicomError/CorruptDicomError on failure."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise NotDicomError(
            f"cannot open the file ({type(exc).__name__}); pass the path of a readable DICOM file"
        ) from redact(exc)
    if size == 0:
        raise NotDicomError(
            "the file is empty (0 bytes); a DICOM file starts with a 132-byte header"
        )
    try:
        with reading(), open(p, "rb") as fh:
            check_deflated(fh)  # a deflate bomb is refused before pydicom inflates it
            ds = pydicom.dcmread(
                fh, stop_before_pixels=headers_only, defer_size=_DEFER_BYTES
            )
    except OversizeDicomError:
        raise
    except InvalidDicomError as exc:
        raise NotDicomError(
            f"not a DICOM file ({size} bytes, no 'DICM' marker after the 128-byte preamble)"
        ) from redact(exc)
    except Exception as exc:  # pydicom raises many types on broken files
        raise CorruptDicomError(
            f"the DICOM file could not be parsed ({type(exc).__name__}); it is truncated or "
            "its elements are malformed"
        ) from redact(exc)
    if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS or (
        "DirectoryRecordSequence" in ds
    ):
        raise NotDicomError("the file is a DICOMDIR (a media directory), not an image")
    if "TransferSyntaxUID" not in ds.file_meta:
        raise CorruptDicomError(
            "the file meta information has no Transfer Syntax UID (0002,0010); re-export the file"
        )
    return ds


@contextmanager
def guarded() -> Iterator[None]:
    """Turn any stray library exception into CorruptDicomError (message redacted, cause chained).

    pydicom converts element values lazily, so a malformed value raises (ValueError,
    TypeError, struct.error, ...) wherever it is first read, not in ``dcmread``.
    """
    try:
        with reading():
            yield
    except (MedfuseError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        raise CorruptDicomError(
            f"the DICOM file has a malformed element ({type(exc).__name__} while reading it); "
            "the file is corrupt or was written with invalid values"
        ) from redact(exc)


def header_int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    """An integer attribute as ``int``, or CorruptDicomError naming the tag and its bad value type."""
    try:
        value = ds.get(keyword, default)
    except Exception as exc:
        raise CorruptDicomError(f"{keyword} cannot be read; the element is malformed") from redact(
            exc
        )
    if value is None or value == "":
        if default is not None:
            return default
        raise CorruptDicomError(
            f"{keyword} is missing; a grayscale image needs Rows, Columns, BitsAllocated, "
            "BitsStored, PixelRepresentation and PixelData"
        )
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        # the value itself is not echoed: it may be any text
        raise CorruptDicomError(
            f"{keyword} is not an integer ({len(str(value))} characters)"
        ) from redact(exc)


def validate_image(ds: Dataset) -> tuple[int, int, int]:
    """Check the attributes decoding needs; return (frames, rows, columns)."""
    if "PixelData" not in ds:
        if "Rows" not in ds:
            sop = _sop_name(ds)
            if len(ds) == 0 or "Image" in sop:
                raise CorruptDicomError(
                    f"the file declares {sop} but holds no image attributes "
                    f"({len(ds)} elements were read); it is truncated or malformed"
                )
            raise UnsupportedDicomError(
                f"the file is not an image ({sop}: no Rows and no PixelData); medfuse reads "
                "CT, MR, CR, DX and other grayscale image objects"
            )
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise UnsupportedDicomError(
                "float pixel data (7FE0,0008/0009) is not supported; integer PixelData is"
            )
        raise CorruptDicomError("the file has image attributes but no PixelData (7FE0,0010)")
    return validate_header(ds)


def validate_header(ds: Dataset) -> tuple[int, int, int]:
    """:func:`validate_image` without the PixelData check (for a header read without pixels)."""
    rows = header_int(ds, "Rows")
    cols = header_int(ds, "Columns")
    bits = header_int(ds, "BitsAllocated")
    stored = header_int(ds, "BitsStored", bits)
    header_int(ds, "PixelRepresentation", 0)
    frames = header_int(ds, "NumberOfFrames", 1)
    spp = header_int(ds, "SamplesPerPixel", 1)
    if rows <= 0 or cols <= 0 or frames <= 0:
        raise CorruptDicomError(
            f"image size {frames} frame(s) × {rows} × {cols} is empty; all must be positive"
        )
    if bits not in (1, 8, 16, 32) or not 0 < stored <= bits:
        raise CorruptDicomError(
            f"BitsAllocated {bits} / BitsStored {stored} are invalid; BitsAllocated must be "
            "1, 8, 16 or 32 and BitsStored in 1..BitsAllocated"
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if spp != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        # the value is named only when it is a defined term: the element may hold any text
        shown = defined_term(photometric, PHOTOMETRIC_INTERPRETATIONS) if photometric else "missing"
        raise UnsupportedDicomError(
            f"not a grayscale image (PhotometricInterpretation {shown}, SamplesPerPixel {spp}); "
            "medfuse reads MONOCHROME1 / MONOCHROME2 images with one sample per pixel"
        )
    check_image_size(frames, rows, cols, bits)
    return frames, rows, cols


def _sop_name(ds: Dataset) -> str:
    """The SOP class's name (a standard term, not patient data), or 'unknown SOP class'."""
    uid = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    name = UID(str(uid)).name if uid else ""
    return name if name and not name[0].isdigit() else "unknown SOP class"


def _transfer_syntax(ds: Dataset) -> UID:
    return UID(str(ds.file_meta.TransferSyntaxUID))


def expected_length(ds: Dataset) -> int:
    """Bytes of uncompressed pixel data the header describes, without an odd length's padding.

    Rows × Columns × SamplesPerPixel × frames (NumberOfFrames, 1 when absent or 0) × bytes per
    sample (1-bit data packed, rounded up to whole bytes); two thirds of that for
    ``YBR_FULL_422`` (PS3.4 C.7.6.3.1.2) — pydicom's own count, computed from the attributes
    only, so that it also works on the fast header view.
    """
    try:
        rows = int(ds.get("Rows"))
        columns = int(ds.get("Columns"))
        samples = int(ds.get("SamplesPerPixel"))
        bits = int(ds.get("BitsAllocated"))
        frames = int(ds.get("NumberOfFrames") or 1) or 1
    except Exception as exc:  # missing (None) or not a number
        raise CorruptDicomError(
            "the image size attributes (Rows, Columns, SamplesPerPixel, BitsAllocated, "
            "NumberOfFrames) are missing or not numbers"
        ) from redact(exc)
    length = rows * columns * samples * frames
    length = length // 8 + (length % 8 > 0) if bits == 1 else length * (bits // 8)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        length = length // 3 * 2
    return length


def length_fits(actual: int, expected: int) -> bool:
    """The uncompressed pixel data length rule: exact, or one padding byte after an odd length."""
    return actual == expected or (expected % 2 == 1 and actual == expected + 1)


def _check_length(ds: Dataset, tsyntax: UID) -> None:
    """Native (uncompressed) pixel data must hold exactly the bytes the header promises.

    One padding byte after an odd length is allowed (PS3.5 7.1.1: values have even length).
    Longer data is refused like shorter data: it means the header's size attributes do not
    describe the pixels (more frames, another bit depth), so any reading of them is a guess.
    """
    if tsyntax.is_compressed:
        return
    expected = expected_length(ds)
    actual = len(ds.PixelData)
    if not length_fits(actual, expected):
        what = "truncated" if actual < expected else "longer than the header says"
        raise PixelDataLengthError(
            f"pixel data is {what}: {actual} bytes, Rows × Columns × Frames × Samples × "
            f"BitsAllocated / 8 gives {expected}"
            + (" (plus one padding byte)" if expected % 2 else "")
            + "; the file is damaged or its size attributes are wrong"
        )


_JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
# Plugins that decode only 8-bit samples of JPEG Extended (Pillow's libjpeg build).
_EIGHT_BIT_JPEG_PLUGINS = frozenset({"pillow"})


def check_decoder(tsyntax: UID, bits_stored: int | None = None) -> None:
    """Raise :class:`MissingDecoderError` (naming the package) unless ``tsyntax`` can be decoded.

    With ``bits_stored``: 12-bit JPEG Extended (``1.2.840.10008.1.2.4.51``) needs a decoder
    that reads 12-bit samples; Pillow, often the only one installed, reads 8-bit ones only.
    """
    from pydicom.pixels.decoders.base import get_decoder

    name = tsyntax.name if tsyntax.is_transfer_syntax else "an unknown transfer syntax"
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError as exc:
        raise UnsupportedDicomError(
            f"no pixel decoder exists for {name}; convert the file to an uncompressed, "
            "JPEG, JPEG 2000 or RLE transfer syntax"
        ) from redact(exc)
    if not decoder.is_available:
        keyword = tsyntax.keyword or ""
        package = next(
            (pkg for prefix, pkg in _PIXEL_PACKAGES.items() if keyword.startswith(prefix)),
            "pylibjpeg with its plugins",
        )
        raise MissingDecoderError(
            f"no decoder is installed for {name}; install {package} (pip install {package.split()[0]})"
        )
    plugins = set(getattr(decoder, "available_plugins", ()) or ())
    if (
        str(tsyntax) == _JPEG_EXTENDED
        and bits_stored is not None
        and bits_stored > 8
        and plugins
        and plugins <= _EIGHT_BIT_JPEG_PLUGINS
    ):
        raise MissingDecoderError(
            f"no decoder is installed for {bits_stored}-bit {name} (Pillow, installed, reads "
            "only 8-bit samples); install pylibjpeg-libjpeg (GPLv3) or python-gdcm "
            "(pip install pylibjpeg-libjpeg)"
        )


_NATIVE = {
    "1.2.840.10008.1.2": "<",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1": "<",  # Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99": "<",  # Deflated (inflated at read time)
    "1.2.840.10008.1.2.2": ">",  # Explicit VR Big Endian
}


def _native_pixels(
    ds: Dataset, tsyntax: UID, frames: int, rows: int, cols: int
) -> NDArray[Any] | None:
    """Uncompressed 8/16/32-bit data straight from the buffer (no copy unless bits need fixing).

    Equivalent to pydicom's native decoder with ``correct_unused_bits``: bits above BitsStored
    are masked (unsigned) or filled with the sign bit (signed), PS3.5 8.1.1.
    """
    order = native_order(tsyntax)
    bits = int(ds.BitsAllocated)
    if order is None or bits not in (8, 16, 32):
        return None
    dtype = native_dtype(order, bits, int(ds.get("PixelRepresentation", 0) or 0) == 1)
    arr = np.frombuffer(ds.PixelData, dtype=dtype, count=frames * rows * cols)
    arr = correct_unused_bits(arr, int(ds.get("BitsStored", bits) or bits))
    return arr.reshape(frames, rows, cols)


def native_order(tsyntax: UID) -> str | None:
    """``"<"`` or ``">"`` for an uncompressed transfer syntax, None for others."""
    return _NATIVE.get(str(tsyntax))


def native_dtype(order: str, bits: int, signed: bool) -> np.dtype[Any]:
    """The stored value's NumPy type for uncompressed data of ``bits`` (8, 16 or 32)."""
    return np.dtype(f"{order}{'i' if signed else 'u'}{bits // 8}")


def correct_unused_bits(arr: NDArray[Any], stored: int) -> NDArray[Any]:
    """Bits above BitsStored masked (unsigned) or filled with the sign bit (signed), PS3.5 8.1.1.

    Returns ``arr`` itself when every allocated bit is stored, else a new array.
    """
    bits = arr.dtype.itemsize * 8
    if stored >= bits:
        return arr
    shift = bits - stored
    out: NDArray[Any]
    if arr.dtype.kind == "i":
        out = np.right_shift(np.left_shift(arr, shift), shift)
    else:
        out = np.bitwise_and(arr, arr.dtype.type((1 << stored) - 1))
    return out


def decode(ds: Dataset) -> NDArray[Any]:
    """Decode all frames once to a (frames, rows, columns) array of stored values.

    Byte order may be non-native (big-endian files); converting to float32 fixes it for free.
    Uncompressed data is a read-only view of the file's buffer; copy before writing to it.
    Native decoders (openjpeg, libjpeg, GDCM) may print to the process's stderr (fd 2).
    """
    frames, rows, cols = validate_image(ds)
    tsyntax = _transfer_syntax(ds)
    _check_length(ds, tsyntax)
    native = _native_pixels(ds, tsyntax, frames, rows, cols)
    if native is not None:
        return native
    check_decoder(tsyntax, int(ds.get("BitsStored", 0) or 0) or None)
    try:
        with reading():
            arr = ds.pixel_array
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # Rust decoders (pylibjpeg-rle) panic with a BaseException
        raise CorruptDicomError(
            f"pixel data could not be decoded ({tsyntax.name if tsyntax.is_transfer_syntax else 'unknown transfer syntax'}, "
            f"{type(exc).__name__}); the data is truncated or corrupt"
        ) from redact(exc)
    arr = np.asarray(arr)
    if arr.size != frames * rows * cols:
        raise CorruptDicomError(
            f"decoded {arr.size} pixels, the header says {frames}×{rows}×{cols}"
        )
    return arr.reshape(frames, rows, cols)
