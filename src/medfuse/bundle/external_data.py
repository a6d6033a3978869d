"""Which external-data files an ONNX model loads, read from its protobuf without the ``onnx`` package.

A model saved with external data keeps (some of) its tensors in other files: such a
``TensorProto`` has ``data_location = EXTERNAL`` and ``external_data`` entries (field 13,
key/value pairs) whose ``location`` is a POSIX path relative to the model's directory
(ONNX "External Data" spec). ONNX Runtime and TensorRT's parser open those files themselves, so
the bundle must list and hash-check them before the model path is handed over.

The runtime tier may not import ``onnx``; this module walks the protobuf wire format directly,
only along the messages that can hold tensors (graph initializers, sparse initializers, node
attributes, nested subgraphs, functions, training info), skipping every other field by its
length. Tensor bytes are never copied, so a model of any size is read in one pass over a
memory map.
"""

from __future__ import annotations

import mmap
from pathlib import Path, PurePosixPath

from medfuse.errors import BundleError

__all__ = ["external_data_locations", "resolve_location"]

_MAX_NESTING = 64

# message kind → {field number: kind of the sub-message}, from onnx.proto
_MODEL, _GRAPH, _NODE, _ATTR, _FUNCTION, _TRAINING, _SPARSE, _TENSOR, _ENTRY = range(9)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 20: _TRAINING, 25: _FUNCTION},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _NODE: {5: _ATTR},
    _FUNCTION: {7: _NODE, 11: _ATTR},
    _ATTR: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
}
_TENSOR_EXTERNAL_DATA = 13


class _Malformed(Exception):
    """The bytes are not a protobuf message of the expected shape."""


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """``(field, wire type, a, b)`` of each field in ``buf[start:end]``: for length-delimited
    fields ``buf[a:b]`` is the payload; for varints ``a`` is the value."""
    out: list[tuple[int, int, int, int]] = []
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            out.append((field, wire, value, pos))
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise _Malformed("a field runs past the end of its message")
            out.append((field, wire, pos, pos + length))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise _Malformed("a fixed-size field runs past the end of its message")
        else:
            raise _Malformed(f"wire type {wire} is not used by ONNX")
    return out


def _tensor_location(buf: memoryview, start: int, end: int) -> str | None:
    # Any tensor naming a location counts, EXTERNAL flag or not: nothing a loader might open
    # escapes the check.
    location: str | None = None
    for field, wire, a, b in _fields(buf, start, end):
        if field == _TENSOR_EXTERNAL_DATA and wire == 2:
            entry = {f: bytes(buf[x:y]) for f, w, x, y in _fields(buf, a, b) if w == 2}
            if entry.get(1) == b"location" and 2 in entry:
                try:
                    location = entry[2].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _Malformed("an external-data location is not UTF-8") from exc
    return location


def _walk(buf: memoryview, kind: int, start: int, end: int, depth: int, found: set[str]) -> None:
    if depth > _MAX_NESTING:
        raise _Malformed(f"messages nested more than {_MAX_NESTING} deep")
    children = _CHILDREN[kind]
    for field, wire, a, b in _fields(buf, start, end):
        child = children.get(field)
        if child is None or wire != 2:
            continue
        if child == _TENSOR:
            location = _tensor_location(buf, a, b)
            if location is not None:
                found.add(location)
        else:
            _walk(buf, child, a, b, depth + 1, found)


def external_data_locations(path: Path, *, name: str) -> tuple[str, ...]:
    """The external-data locations the ONNX model at ``path`` refers to, sorted, as written.

    Parameters
    ----------
    path:
        The ``.onnx`` file.
    name:
        Its name for messages (relative to the bundle, never an absolute path).

    Returns
    -------
    tuple of str
        Each distinct ``location`` (relative to the model's directory); empty for a model that
        keeps all its tensors inside.

    Raises
    ------
    BundleError
        The file cannot be read or is not an ONNX protobuf.
    """
    found: set[str] = set()
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            if size == 0:
                raise _Malformed("the file is empty")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    _walk(view, _MODEL, 0, size, 0, found)
                finally:
                    view.release()
    except _Malformed as exc:
        raise BundleError(f"{name} is not a readable ONNX model ({exc}); re-export it") from None
    except OSError as exc:
        raise BundleError(f"{name}: cannot read it ({exc.strerror})") from exc
    return tuple(sorted(found))


def resolve_location(model_file: str, location: str) -> str | None:
    """The bundle-relative path of external data ``location`` of the model at ``model_file``
    (both POSIX), or ``None`` when ``location`` is absolute or leaves the model's directory."""
    if not location or location.startswith("/") or "\\" in location or ":" in location:
        return None
    parts = PurePosixPath(location).parts
    if any(p in ("..", ".") for p in parts):
        return None
    return (PurePosixPath(model_file).parent / location).as_posix()
