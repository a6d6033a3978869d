"""A DICOM study as one BYTES tensor element, and what the server does with it.

Wire format (``encode_study`` / ``decode_study``)
-------------------------------------------------
A study travels as one byte string, the element of a Triton ``BYTES`` (``TYPE_STRING``) tensor
of shape ``[1]`` per request. Three forms are accepted:

1. **medfuse framing** (what :func:`encode_study` writes; cheapest to produce and to parse)::

       b"MFSTUDY1"                      8-byte magic
       uint32 little-endian N           number of files
       N × (uint64 little-endian L, L bytes of one DICOM Part-10 file)

2. **a tar archive** (POSIX ustar / GNU / pax, uncompressed) of the study's files, e.g.
   ``tar -cf study.tar STUDY_DIR``: regular members are taken, everything else (folders,
   links, devices) is ignored;
3. **one DICOM Part-10 file** (``DICM`` at offset 128): a single-image study (an X-ray).

File names inside a tar are never used: the files are written to a private temporary folder as
``00000.dcm``, ``00001.dcm``, … so no name from the client reaches the disk, a log or a message.

Errors are PHI-free: :func:`safe_error` applies the one redaction policy
(:mod:`medfuse.runtime.results.redaction`): a medfuse error's message (PHI-free by contract, then
redacted of the study's UIDs and the temporary folder) is kept, any other exception is reduced to
its type.
"""

from __future__ import annotations

import io
import logging
import struct
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from medfuse.bundle.spec import ModelSpec
from medfuse.errors import (
    DicomError,
    MedfuseError,
    PreprocessingError,
    StudyError,
    UploadTooLargeError,
    UsageError,
)

if TYPE_CHECKING:
    from medfuse.runtime.results import ResultRecord
    from medfuse.runtime.session import Session

__all__ = [
    "MAGIC",
    "MAX_EXPANSION",
    "MAX_FILES",
    "MAX_STUDY_BYTES",
    "MAX_TAR_MEMBERS",
    "STUDY_RESULT",
    "DecodedStudy",
    "StudyHandler",
    "decode_study",
    "encode_study",
    "encode_study_folder",
    "materialize_study",
    "preprocess_payloads",
    "safe_error",
]

log = logging.getLogger(__name__)

MAGIC = b"MFSTUDY1"
MAX_FILES = 100_000
MAX_TAR_MEMBERS = 2 * MAX_FILES
"""Members of any kind (folders, links …) a tar may hold; each costs a header object."""
MAX_STUDY_BYTES = 8 << 30
"""Bytes all files of one study may expand to (before the memory cap of :func:`_study_cap`)."""
MAX_EXPANSION = 1.0
"""Expanded bytes per payload byte a tar may reach (plus one MiB for headers): an uncompressed
tar stores every byte, so only sparse members expand, and medfuse takes none."""
_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")


def encode_study(files: Iterable[bytes]) -> bytes:
    """Frame the bytes of a study's DICOM files as one payload (medfuse framing).

    Parameters
    ----------
    files:
        The contents of each DICOM file of the study, in any order.

    Raises
    ------
    UsageError
        No file, or more than :data:`MAX_FILES`.
    """
    parts = [bytes(f) for f in files]
    if not parts or len(parts) > MAX_FILES:
        raise UsageError(
            f"a study payload needs 1 to {MAX_FILES} files, got {len(parts)}; give the "
            "study's DICOM files"
        )
    out = [MAGIC, _COUNT.pack(len(parts))]
    for part in parts:
        out.append(_LENGTH.pack(len(part)))
        out.append(part)
    return b"".join(out)


def encode_study_folder(folder: str | Path) -> bytes:
    """Frame every regular file under ``folder`` (recursively, sorted) as one study payload.

    Non-DICOM files travel too and are skipped by the server's discovery, as in ``medfuse run``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise UsageError("the study folder does not exist or is not a folder")
    return encode_study(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _decode_framed(data: bytes) -> list[bytes]:
    if len(data) < len(MAGIC) + _COUNT.size:
        raise DicomError("study payload: truncated medfuse framing (no file count)")
    (count,) = _COUNT.unpack_from(data, len(MAGIC))
    if not 1 <= count <= MAX_FILES:
        raise DicomError(f"study payload: file count {count} is outside 1..{MAX_FILES}")
    pos = len(MAGIC) + _COUNT.size
    files: list[bytes] = []
    for i in range(count):
        if pos + _LENGTH.size > len(data):
            raise DicomError(
                f"study payload: truncated before the length of file #{i + 1} of {count}"
            )
        (length,) = _LENGTH.unpack_from(data, pos)
        pos += _LENGTH.size
        if pos + length > len(data):
            raise DicomError(
                f"study payload: file #{i + 1} of {count} claims {length} bytes but only "
                f"{len(data) - pos} remain (truncated upload?)"
            )
        files.append(data[pos : pos + length])
        pos += length
    if pos != len(data):
        raise DicomError(f"study payload: {len(data) - pos} unexpected bytes after the last file")
    return files


def _too_large(what: str) -> UploadTooLargeError:
    return UploadTooLargeError(
        f"study payload too large: {what}; send the study's DICOM files as an uncompressed tar "
        "without sparse members, or the medfuse framing (HTTP 413 alike)"
    )


def _study_cap() -> int:
    """The most bytes one study's files may expand to here: 8 GiB, or a quarter of the memory
    available now (the files are held in memory while they are written out)."""
    from medfuse.runtime.dicom.limits import _available_memory

    available = _available_memory()
    return MAX_STUDY_BYTES if available is None else min(MAX_STUDY_BYTES, available // 4)


def _decode_tar(data: bytes) -> list[bytes]:
    """The regular members' bytes, with every cap checked from the headers before reading.

    Raises
    ------
    UploadTooLargeError
        Too many members, a member over the per-file cap, a sparse member, more expanded bytes
        than the payload holds (compression ratio) or than the study cap.
    """
    from medfuse.runtime.dicom.limits import max_inflated_bytes

    per_file = max_inflated_bytes()
    expand_cap = min(int(len(data) * MAX_EXPANSION) + (1 << 20), _study_cap())
    files: list[bytes] = []
    members = 0
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                members += 1
                if members > MAX_TAR_MEMBERS:
                    raise _too_large(f"the tar holds more than {MAX_TAR_MEMBERS} members")
                if not member.isreg():
                    continue
                if member.issparse():
                    raise _too_large(
                        f"member #{members} is a sparse file declaring {member.size} bytes"
                    )
                if len(files) >= MAX_FILES:
                    raise _too_large(f"the tar holds more than {MAX_FILES} files")
                if member.size > per_file:
                    raise _too_large(
                        f"member #{members} holds {member.size} bytes, more than the "
                        f"{per_file} one file may have"
                    )
                total += member.size
                if total > expand_cap:
                    raise _too_large(
                        f"its files expand to more than {expand_cap} bytes from a "
                        f"{len(data)}-byte payload"
                    )
                handle = tar.extractfile(member)
                if handle is not None:
                    files.append(handle.read())
    except (tarfile.TarError, EOFError) as exc:
        raise DicomError(
            f"study payload: not a readable tar archive ({type(exc).__name__}); send an "
            "uncompressed tar, the medfuse framing, or one DICOM file"
        ) from None
    if not files:
        raise DicomError("study payload: the tar archive holds no regular file")
    return files


def decode_study(data: bytes) -> list[bytes]:
    """Split a study payload (medfuse framing, tar, or one DICOM file) into its files' bytes.

    Raises
    ------
    DicomError
        Empty, truncated or unrecognised payload; the message says which form was expected.
    UploadTooLargeError
        A tar over its caps (members, sizes, expansion); see :func:`_decode_tar`.
    """
    data = bytes(data)
    if not data:
        raise DicomError("study payload: empty; send the study's DICOM files (see encode_study)")
    if data.startswith(MAGIC):
        return _decode_framed(data)
    if len(data) >= 132 and data[128:132] == b"DICM":
        return [data]
    if len(data) >= 512 and data[257:262] == b"ustar":
        return _decode_tar(data)
    raise DicomError(
        f"study payload: {len(data)} bytes in no known form (expected the medfuse framing "
        f"{MAGIC.decode()}, an uncompressed tar, or one DICOM Part-10 file)"
    )


@dataclass(frozen=True)
class DecodedStudy:
    """A payload written to a temporary folder and discovered as one study."""

    folder: Path
    study: Any
    files: int
    skipped: Mapping[str, int]


def materialize_study(data: bytes, folder: Path) -> DecodedStudy:
    """Write a payload's files into ``folder`` (``00000.dcm``, …) and discover its one study.

    Raises
    ------
    DicomError
        The payload cannot be decoded or holds no DICOM image.
    StudyError
        It holds more than one study (one request carries one study).
    """
    from medfuse.runtime.dicom import discover_studies

    files = decode_study(data)
    folder.mkdir(parents=True, exist_ok=True)
    for i, content in enumerate(files):
        (folder / f"{i:05d}.dcm").write_bytes(content)
    discovery = discover_studies(folder)
    studies = discovery.studies
    skipped = {str(k): int(v) for k, v in discovery.skipped.items()}
    if not studies:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(skipped.items())) or "none"
        raise DicomError(
            f"study payload: no DICOM image among its {len(files)} file(s) (skipped: {reasons})"
        )
    if len(studies) > 1:
        raise StudyError(f"study payload: holds {len(studies)} studies; send one study per request")
    return DecodedStudy(folder=folder, study=studies[0], files=len(files), skipped=skipped)


@contextmanager
def study_workdir() -> Iterator[Path]:
    """A private temporary folder for decoded studies, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="medfuse-serve-") as tmp:
        yield Path(tmp)


def safe_error(
    exc: BaseException, *, study: Any = None, root: Path | None = None
) -> tuple[str, str]:
    """``(error type, PHI-free message)`` for a failed study (the one redaction policy,
    :func:`medfuse.runtime.results.redaction.error_info`)."""
    from medfuse.runtime.results import error_info

    info = error_info(exc, stage="serve", study=study, root=root)
    return info.type, info.message


def preprocess_payloads(
    payloads: Sequence[bytes], spec: ModelSpec
) -> dict[str, NDArray[np.float32]]:
    """Preprocess study payloads into the model's input tensors (one row per payload).

    This is what the Triton Python-backend preprocessing model runs: medfuse's own preprocessing
    (:func:`medfuse.runtime.preprocess.preprocess_study`), so the tensors equal the ones
    ``Session.predict`` feeds the model; like there, a series whose values are NaN or infinite
    after the modality LUT is refused by the intensity step (``require_finite``).

    Raises
    ------
    MedfuseError
        The first payload that fails, with a PHI-free message naming its position.
    """
    from medfuse.runtime.preprocess import preprocess_study

    n = len(payloads)
    arrays = {i.name: np.zeros(i.batch_shape(n), dtype=np.dtype(i.dtype)) for i in spec.inputs}
    with study_workdir() as tmp:
        for row, data in enumerate(payloads):
            folder = tmp / f"{row:05d}"
            decoded: DecodedStudy | None = None
            try:
                decoded = materialize_study(data, folder)
                preprocess_study(decoded.study, spec, {k: v[row] for k, v in arrays.items()})
            except Exception as exc:
                _kind, message = safe_error(
                    exc, study=None if decoded is None else decoded.study, root=folder
                )
                raise _category(exc)(f"study #{row + 1} of {n}: {message}") from None
    return arrays


def _category(exc: BaseException) -> type[MedfuseError]:
    """The broad medfuse error class to re-raise ``exc``'s redacted message as."""
    for cls in (UploadTooLargeError, DicomError, StudyError, PreprocessingError):
        if isinstance(exc, cls):
            return cls
    return StudyError


STUDY_RESULT = "result"
"""Name of the BYTES output of the served study model: one JSON record per study."""


class StudyHandler:
    """Turns study payloads into ``medfuse run`` records with one session (not thread-safe).

    Parameters
    ----------
    session:
        An open :class:`~medfuse.runtime.session.Session` (one per handler).
    secret:
        The deployment secret for pseudonymous study keys.
    workers:
        Preprocessing threads of ``predict_many``.
    """

    def __init__(self, session: Session, secret: bytes, *, workers: int = 2) -> None:
        self.session = session
        self.secret = secret
        self.workers = workers
        self.model = session.info.model_info()

    def __call__(self, payloads: Sequence[bytes]) -> list[ResultRecord]:
        """One record per payload, in order; a bad payload becomes an ``"error"`` record."""
        from medfuse.runtime.results import ResultRecord, error_info

        records: list[ResultRecord | None] = [None] * len(payloads)
        with study_workdir() as tmp:
            decoded: list[tuple[int, DecodedStudy]] = []
            for i, data in enumerate(payloads):
                folder = tmp / f"{i:05d}"
                try:
                    decoded.append((i, materialize_study(data, folder)))
                except Exception as exc:
                    records[i] = ResultRecord(
                        study=None,
                        status="error",
                        model=self.model,
                        error=error_info(exc, stage="decode", root=folder),
                    )
            if decoded:
                outcomes = self.session.predict_many(
                    [d.study for _, d in decoded],
                    batch_size=min(len(decoded), self.session.backend.max_batch),
                    workers=self.workers,
                )
                for (i, d), outcome in zip(decoded, outcomes, strict=True):
                    records[i] = ResultRecord.from_outcome(
                        d.study.key(self.secret), outcome, self.model
                    )
        log.debug("answered %d studies (%d decoded)", len(payloads), len(decoded))
        return [r for r in records if r is not None]
