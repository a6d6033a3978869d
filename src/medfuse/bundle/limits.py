"""Bounded reading of the small JSON documents a bundle trusts: manifest, signature, trust config.

``json.loads`` on hostile text ends in a traceback (``"[" * 200000`` → ``RecursionError``, a
5001-digit number → ``ValueError``) or in unbounded memory. :func:`load_json` checks the size,
the nesting depth (before parsing, so the parser never recurses deeper than allowed), the length
of every number literal, that every float is finite, and that no object repeats a key — and turns
every failure into the caller's :class:`~medfuse.errors.MedfuseError` subclass with a message
that names the document and the limit. :func:`shown` is the one bounded ``repr`` for echoing a
document's value in a message.

Only stdlib and numpy here: this module is part of the runtime tier.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medfuse.errors import MedfuseError

__all__ = [
    "MANIFEST_LIMITS",
    "SMALL_DOCUMENT_LIMITS",
    "JsonLimits",
    "load_json",
    "max_nesting",
    "read_bounded",
    "shown",
]


@dataclass(frozen=True)
class JsonLimits:
    """How large a JSON document may be.

    Parameters
    ----------
    max_bytes:
        Size of the whole document.
    max_depth:
        Nesting of arrays and objects (the top-level object is depth 1).
    max_number_chars:
        Characters of one number literal (sign, digits, point and exponent): 20 holds every
        64-bit integer and every float JSON writers produce.
    """

    max_bytes: int
    max_depth: int = 32
    max_number_chars: int = 24


# The shipped reference manifest is 11 kB at depth 8; a bundle with hundreds of engines stays
# far below 4 MiB. Signature files and trust configs are a few hundred bytes.
MANIFEST_LIMITS = JsonLimits(max_bytes=4 << 20)
SMALL_DOCUMENT_LIMITS = JsonLimits(max_bytes=256 << 10, max_depth=8)

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_STEP = np.zeros(256, dtype=np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_SHOWN_CHARS = 60


class _Refused(Exception):
    """A limit was hit inside a json hook (turned into the caller's error)."""


def shown(value: Any, limit: int = _SHOWN_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters, for echoing a document's value in a message.

    Containers are summarised by type and length, never printed whole.
    """
    if isinstance(value, Mapping):
        return f"an object of {len(value)} field(s)"
    if isinstance(value, list | tuple):
        return f"an array of {len(value)} item(s)"
    text = repr(value[: limit + 1]) if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def max_nesting(data: bytes) -> int:
    """Deepest nesting of ``[``/``{`` in JSON text, brackets inside strings not counted."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = _STEP[np.frombuffer(brackets, dtype=np.uint8)].astype(np.int64)
    return int(np.cumsum(steps).max())


def _check_length(text: str, limits: JsonLimits) -> str:
    if len(text) > limits.max_number_chars:
        raise _Refused(
            f"a number of {len(text)} characters is longer than the "
            f"{limits.max_number_chars} allowed"
        )
    return text


def _parse_int(limits: JsonLimits) -> Any:
    return lambda text: int(_check_length(text, limits))


def _parse_float(limits: JsonLimits) -> Any:
    def parse(text: str) -> float:
        value = float(_check_length(text, limits))
        if not math.isfinite(value):
            raise _Refused(f"the number {shown(text)} is out of range")
        return value

    return parse


def _refuse_constant(text: str) -> Any:
    raise _Refused(f"{text} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the key {shown(key)} appears twice in one object")
        out[key] = value
    return out


def load_json(
    data: str | bytes,
    *,
    source: str,
    error: type[MedfuseError],
    limits: JsonLimits,
) -> Any:
    """Parse JSON text within ``limits``.

    Parameters
    ----------
    data:
        The document (UTF-8 when bytes).
    source:
        What it is, for messages (``"bundle x.medfuse: manifest.json"``); never a value from it.
    error:
        The error raised on any failure, e.g. :class:`~medfuse.errors.ManifestError`.
    limits:
        Size, depth and number limits.

    Returns
    -------
    Any
        The parsed document (objects as dicts, arrays as lists).

    Raises
    ------
    MedfuseError
        Of type ``error``: too large, nested too deep, a number too long or not finite, a key
        repeated in one object, or not valid JSON.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > limits.max_bytes:
        raise error(
            f"{source}: {len(raw)} bytes is larger than the {limits.max_bytes} allowed; "
            "this is not a document medfuse wrote"
        )
    depth = max_nesting(raw)
    if depth > limits.max_depth:
        raise error(
            f"{source}: nested {depth} levels deep, more than the {limits.max_depth} allowed; "
            "this is not a document medfuse wrote"
        )
    try:
        return json.loads(
            raw,
            parse_int=_parse_int(limits),
            parse_float=_parse_float(limits),
            parse_constant=_refuse_constant,
            object_pairs_hook=_unique_keys,
        )
    except _Refused as exc:
        raise error(f"{source}: {exc}; this is not a document medfuse wrote") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{source}: not valid JSON ({exc})") from exc
    except (RecursionError, ValueError) as exc:  # a belt to the checks above
        raise error(f"{source}: not a readable JSON document ({type(exc).__name__})") from None


def read_bounded(path: Path, max_bytes: int, *, what: str, error: type[MedfuseError]) -> bytes:
    """Read a small file, refusing one larger than ``max_bytes`` before reading it.

    Parameters
    ----------
    path:
        The file.
    max_bytes:
        Largest size accepted.
    what:
        Its name for messages (relative, e.g. ``"bundle x.medfuse: manifest.json"``).
    error:
        The error raised when it is too large or unreadable.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{what}: cannot read it ({exc.strerror})") from exc
    if len(data) > max_bytes:
        raise error(
            f"{what}: larger than the {max_bytes} bytes allowed; this is not a document "
            "medfuse wrote"
        )
    return data
