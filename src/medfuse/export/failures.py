"""Why an exporter failed, in a few plain lines: the root cause of a chained exception.

torch's exporters wrap the real error: ``torch.onnx.export(dynamo=True)`` raises a
``TorchExportError`` whose first line is boilerplate ("Failed to export the model with
torch.export. This is step 1/3…", with ANSI colour codes) and whose cause — a missing package, a
data-dependent branch — sits in its ``__cause__`` chain and in an "Exception summary" section.
:func:`root_cause` finds that cause; :func:`full_text` gives the whole chain (for ``-v``).
"""

from __future__ import annotations

import re

__all__ = ["full_text", "root_cause", "strip_ansi"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_SUMMARY = re.compile(r"## Exception summary\s*\n(.*?)(?:\n\s*\(Refer to|\Z)", re.S)
_MAX_LINES = 4
_MAX_CHARS = 600


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (terminal colours)."""
    return _ANSI.sub("", text)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        out.append(e)
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return out


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in strip_ansi(text).splitlines() if ln.strip()]


def _brief(exc: BaseException) -> str:
    lines = _lines(str(exc))
    body = " / ".join(lines[:_MAX_LINES])
    return f"{type(exc).__name__}: {body}" if body else type(exc).__name__


def root_cause(exc: BaseException) -> str:
    """One or a few lines saying why ``exc`` happened, without ANSI codes.

    The deepest exception of the ``__cause__`` / ``__context__`` chain when there is one; else
    the "Exception summary" section torch's exporter writes; else the message's first lines.
    """
    chain = _chain(exc)
    if len(chain) > 1:
        text = _brief(chain[-1])
    else:
        match = _SUMMARY.search(strip_ansi(str(exc)))
        summary = _lines(match.group(1)) if match else []
        text = " / ".join(summary[:_MAX_LINES]) if summary else _brief(exc)
    return text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 1] + "…"


def full_text(exc: BaseException) -> str:
    """The whole chain, outermost first, ANSI codes removed (for verbose logs)."""
    parts = [f"{type(e).__name__}: {strip_ansi(str(e))}" for e in _chain(exc)]
    return "\n--- caused by ---\n".join(parts)
