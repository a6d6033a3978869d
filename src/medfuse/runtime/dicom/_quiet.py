"""Keep pydicom from leaking patient data through its warnings and log records.

pydicom echoes raw element values ("Invalid value for VR IS: 'MRN123'") and file paths
("... found in file /data/DOE^JANE/x.dcm") in both ``warnings.warn`` and its ``pydicom``
logger. medfuse therefore:

- sets ``pydicom.config.settings.reading_validation_mode`` to ``IGNORE`` so invalid values are
  kept as read instead of being validated (and reported) while reading;
- installs a filter on the ``pydicom`` logger that drops records below ERROR and replaces the
  text of the others with a fixed, value-free message;
- reads every file inside :func:`reading`, which swallows the warnings raised meanwhile;
- replaces library exceptions chained under medfuse errors with :class:`RedactedCause`, which
  keeps the original type and traceback (code locations) but not the message.

Native decoders (openjpeg, libjpeg, GDCM) write to file descriptor 2 directly, bypassing Python;
a deployment that must keep stderr clean redirects fd 2 for the process (the CLI does not).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pydicom.config

__all__ = ["RedactedCause", "quiet_pydicom", "reading", "redact"]


class RedactedCause(Exception):
    """Stands in for a library exception whose message may carry patient data or paths."""


class _RedactPydicom(logging.Filter):
    """Drop pydicom's chatter; keep errors, but with a fixed text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return False
        record.msg = "pydicom reported an error (message redacted: it may contain patient data)"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


_FILTER = _RedactPydicom(name="")
_installed = False


def quiet_pydicom() -> None:
    """Silence and redact pydicom's logging and validation warnings (idempotent).

    Sets ``pydicom.config.settings.reading_validation_mode = IGNORE`` (process-wide: invalid
    values are kept as read, medfuse validates what it uses itself), and installs a filter on the
    ``pydicom`` logger that drops records below ERROR and blanks the text of the rest. Every
    public entry point of :mod:`medfuse.runtime.dicom` calls it; calling it again does nothing.
    """
    global _installed
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    if _installed:
        return
    logger = logging.getLogger("pydicom")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    _installed = True


@contextmanager
def reading() -> Iterator[None]:
    """Context for one read: pydicom quieted and its warnings swallowed (they carry values)."""
    quiet_pydicom()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def redact(exc: BaseException) -> RedactedCause:
    """A value-free stand-in for ``exc`` to chain as ``__cause__``: its type and traceback only."""
    stand_in = RedactedCause(
        f"{type(exc).__module__}.{type(exc).__qualname__} (message redacted: it may contain "
        "patient data or file paths)"
    )
    return stand_in.with_traceback(exc.__traceback__)
