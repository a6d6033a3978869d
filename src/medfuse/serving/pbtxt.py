"""Protocol-buffer text format (``config.pbtxt``): a writer and a parser for the subset medfuse emits.

Triton reads a model's configuration as the text form of its ``ModelConfig`` message. medfuse
builds a configuration as plain Python values and renders it here:

- a ``dict`` is a message (``field { ... }``); a ``list`` is a repeated field;
- ``str`` is a quoted string, ``int`` / ``float`` a number, ``bool`` ``true`` / ``false``;
- :class:`Enum` is an enum value written bare (``TYPE_FP32``, ``KIND_GPU``);
- a map field (``cc_model_filenames``, ``input_map``, ``parameters``) is a list of
  ``{"key": ..., "value": ...}`` messages, which is how the text format writes maps.

:func:`parse_pbtxt` reads that subset back (every field as a list of its values, messages as
dicts) so tests can compare a written configuration with the manifest without Triton's protos.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medfuse.errors import UsageError

__all__ = ["Enum", "format_pbtxt", "parse_pbtxt"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<punct>[{}\[\]:,])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?))
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Enum:
    """An enum value, written without quotes (``TYPE_FP32``)."""

    name: str

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise UsageError(f"{self.name!r} is not an enum value name (letters, digits, '_')")


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)  # a valid text-format string literal
    raise UsageError(f"cannot write {type(value).__name__} {value!r} in a config.pbtxt")


def _fields(msg: Mapping[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for name, value in msg.items():
        if not _NAME_RE.match(name):
            raise UsageError(f"{name!r} is not a field name")
        if isinstance(value, Mapping):
            lines.append(f"{pad}{name} {{")
            lines.extend(_fields(value, indent + 1))
            lines.append(f"{pad}}}")
        elif isinstance(value, list | tuple):
            if value and all(isinstance(v, Mapping) for v in value):
                lines.append(f"{pad}{name} [")
                for i, item in enumerate(value):
                    lines.append(f"{pad}  {{")
                    lines.extend(_fields(item, indent + 2))
                    lines.append(f"{pad}  }}" + ("," if i < len(value) - 1 else ""))
                lines.append(f"{pad}]")
            elif any(isinstance(v, Mapping) for v in value):
                raise UsageError(f"field {name!r}: a list must hold only messages or only scalars")
            else:
                lines.append(f"{pad}{name}: [ {', '.join(_scalar(v) for v in value)} ]")
        else:
            lines.append(f"{pad}{name}: {_scalar(value)}")
    return lines


def format_pbtxt(config: Mapping[str, Any]) -> str:
    """Render ``config`` (see the module docstring) as protobuf text format, newline-terminated.

    Raises
    ------
    UsageError
        A field name or value that the text format cannot carry.
    """
    return "\n".join(_fields(config, 0)) + "\n"


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if m is None:
                if text[pos:].strip() == "":
                    break
                raise UsageError(
                    f"config.pbtxt: cannot parse at character {pos}: {text[pos : pos + 20]!r}"
                )
            pos = m.end()
            kind = m.lastgroup
            if kind is None or kind == "comment":
                continue
            self.items.append((kind, m.group(kind)))
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def next(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise UsageError("config.pbtxt: unexpected end of text")
        self.pos += 1
        return tok

    def expect(self, value: str) -> None:
        _kind, got = self.next()
        if got != value:
            raise UsageError(f"config.pbtxt: expected {value!r}, got {got!r}")


def _value(tok: tuple[str, str]) -> Any:
    kind, text = tok
    if kind == "string":
        return json.loads(text)
    if kind == "number":
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind == "word":
        return {"true": True, "false": False}.get(text, Enum(text))
    raise UsageError(f"config.pbtxt: expected a value, got {text!r}")


def _message(tokens: _Tokens, closing: str | None) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    while True:
        tok = tokens.peek()
        if tok is None:
            if closing is not None:
                raise UsageError(f"config.pbtxt: missing {closing!r}")
            return out
        if tok[1] == closing:
            tokens.next()
            return out
        kind, name = tokens.next()
        if kind != "word":
            raise UsageError(f"config.pbtxt: expected a field name, got {name!r}")
        values = out.setdefault(name, [])
        if tokens.peek() == ("punct", ":"):
            tokens.next()
        nxt = tokens.peek()
        if nxt == ("punct", "{"):
            tokens.next()
            values.append(_message(tokens, "}"))
        elif nxt == ("punct", "["):
            tokens.next()
            while tokens.peek() != ("punct", "]"):
                if tokens.peek() == ("punct", "{"):
                    tokens.next()
                    values.append(_message(tokens, "}"))
                else:
                    values.append(_value(tokens.next()))
                if tokens.peek() == ("punct", ","):
                    tokens.next()
            tokens.expect("]")
        else:
            values.append(_value(tokens.next()))
        if tokens.peek() in (("punct", ","), ("punct", ";")):
            tokens.next()


def parse_pbtxt(text: str) -> dict[str, list[Any]]:
    """Parse the protobuf text format medfuse writes: ``{field: [values...]}``, messages as dicts.

    Every field maps to the list of its values (a singular field has one), so repeated and
    singular fields read the same way; enum values come back as :class:`Enum`.

    Raises
    ------
    UsageError
        Text outside the supported subset, with the position.
    """
    return _message(_Tokens(text), None)


def first(msg: Mapping[str, Sequence[Any]], name: str, default: Any = None) -> Any:
    """The single value of field ``name`` in a parsed message (``default`` when absent)."""
    values = msg.get(name)
    return values[0] if values else default
