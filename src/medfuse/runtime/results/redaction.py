"""The one redaction policy: what of a study or a failure may reach a log, a message or a result.

Rules (DESIGN.md, "Privacy and safety"):

- A header value is never echoed. Where a message or record must name a value of a coded
  attribute (Modality, PhotometricInterpretation), :func:`defined_term` passes it only when it is
  one of the standard's defined terms and says ``unknown`` otherwise — a patient name written into
  PhotometricInterpretation never gets through.
- A failure keeps a medfuse error's message (PHI-free by construction) and reduces any other
  exception to its type (:func:`error_info`), because a library's message can quote paths or values.
- As a second line of defence, every UID and input path of the failing study is removed from the
  message (:func:`redact`).

``medfuse run``, ``medfuse scan``, ``Session.predict_many`` and ``medfuse serve`` all go through
this module; nothing else redacts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medfuse.errors import MedfuseError
from medfuse.runtime.results.outcomes import ErrorInfo

__all__ = [
    "MODALITIES",
    "PHOTOMETRIC_INTERPRETATIONS",
    "defined_term",
    "error_info",
    "modality_term",
    "redact",
]

log = logging.getLogger(__name__)

MODALITIES = frozenset(
    # PS3.3 C.7.3.1.1.1 defined terms, current and retired
    [
        "AR",
        "ASMT",
        "AU",
        "BDUS",
        "BI",
        "BMD",
        "CR",
        "CT",
        "CTPROTOCOL",
        "DG",
        "DOC",
        "DX",
        "ECG",
        "EPS",
        "ES",
        "FID",
        "GM",
        "HC",
        "HD",
        "IO",
        "IOL",
        "IVOCT",
        "IVUS",
        "KER",
        "KO",
        "LEN",
        "LS",
        "MG",
        "MR",
        "M3D",
        "NM",
        "OAM",
        "OCT",
        "OP",
        "OPM",
        "OPT",
        "OPTBSV",
        "OPTENF",
        "OPV",
        "OSS",
        "OT",
        "PLAN",
        "POS",
        "PR",
        "PT",
        "PX",
        "REG",
        "RESP",
        "RF",
        "RG",
        "RTDOSE",
        "RTIMAGE",
        "RTINTENT",
        "RTPLAN",
        "RTRAD",
        "RTRECORD",
        "RTSEGANN",
        "RTSTRUCT",
        "RWV",
        "SEG",
        "SM",
        "SMR",
        "SR",
        "SRF",
        "STAIN",
        "TEXTUREMAP",
        "TG",
        "US",
        "VA",
        "XA",
        "XC",
        "AS",
        "CD",
        "CF",
        "CP",
        "CS",
        "DD",
        "DF",
        "DM",
        "DS",
        "EC",
        "FA",
        "FS",
        "LP",
        "MA",
        "MS",
        "OPR",
        "ST",
        "VF",
    ]
)
"""Modality defined terms (PS3.3 C.7.3.1.1.1), the retired ones included."""

PHOTOMETRIC_INTERPRETATIONS = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "PALETTE COLOR",
        "RGB",
        "HSV",
        "ARGB",
        "CMYK",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_422",
        "YBR_PARTIAL_420",
        "YBR_ICT",
        "YBR_RCT",
        "XYB",
    }
)
"""PhotometricInterpretation defined terms (PS3.3 C.7.6.3.1.2)."""

UNKNOWN = "unknown"


def defined_term(value: Any, allowed: Iterable[str]) -> str:
    """``value`` (stripped, upper case) if it is one of the ``allowed`` terms, else ``"unknown"``."""
    text = str(value or "").strip().upper()
    return text if text in allowed else UNKNOWN


def modality_term(value: Any) -> str:
    """A Modality value fit for logs and records: a defined term, or ``"unknown"``."""
    return defined_term(value, MODALITIES)


def error_info(
    exc: BaseException, *, stage: str, study: Any = None, root: Path | None = None
) -> ErrorInfo:
    """The PHI-free description of a failure: type, message, stage.

    A :class:`~medfuse.errors.MedfuseError` keeps its class name and message, with the study's
    UIDs and paths removed (:func:`redact`); any other exception becomes ``InternalError`` with
    only its type named.
    """
    if isinstance(exc, MedfuseError):
        return ErrorInfo(type(exc).__name__, redact(str(exc), study=study, root=root), stage)
    log.debug("%s during %s", type(exc).__name__, stage)
    return ErrorInfo(
        "InternalError",
        f"unexpected {type(exc).__name__} during {stage} (run with -v and report it)",
        stage,
    )


def redact(message: str, *, study: Any = None, root: Path | None = None) -> str:
    """``message`` without the study's UIDs and input paths (absolute, relative, long parts).

    Parameters
    ----------
    message:
        Text to clean.
    study:
        A discovered :class:`~medfuse.runtime.dicom.Study` (its UIDs and file paths are removed).
    root:
        The folder the study was found under (removed, and paths are also removed relative to it).
    """
    if not message:
        return message
    needles: set[str] = set()
    if root is not None:
        needles.update({str(root), str(Path(root).resolve())})
    if study is not None:
        needles.add(str(getattr(study, "uid", "") or ""))
        for series in getattr(study, "series", ()):
            needles.add(str(getattr(series, "uid", "") or ""))
            needles.add(str(getattr(series, "frame_of_reference_uid", "") or ""))
            for inst in getattr(series, "instances", ()):
                needles.add(str(getattr(inst, "sop_instance_uid", "") or ""))
                path = getattr(inst, "path", None)
                if path is not None:
                    needles.update(_path_needles(Path(path), root))
    for needle in sorted((n for n in needles if len(n) >= 4), key=len, reverse=True):
        message = message.replace(needle, "[redacted]")
    return message


def _path_needles(path: Path, root: Path | None) -> list[str]:
    """A file's absolute path, its path relative to the root, and its longer name parts."""
    out = [str(path)]
    parts: Iterable[str] = path.parts
    if root is not None:
        try:
            relative = path.relative_to(root)
        except ValueError:
            relative = path
        out.append(str(relative))
        parts = relative.parts
    out.extend(p for p in parts if len(p) >= 8)
    return out
