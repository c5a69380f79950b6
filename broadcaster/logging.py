"""Logging that never lets a full phone number reach a handler.

:class:`PhoneMaskingFilter` masks phone numbers in a record's message, exception text,
stack text and string ``extra`` fields. :func:`configure_logging` puts it on the root
logger's HANDLER (not the root logger), so records from every logger that propagates to the
root (celery, twilio, httpx, uvicorn.error...) pass through it, not only riskcast's own.

Pure: only the standard library and ``phonenumbers`` (through broadcaster.phones).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from broadcaster.phones import mask_phones_in_text

__all__ = ["LOG_FORMAT", "PhoneMaskingFilter", "configure_logging"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)).keys()
) | {"message", "asctime", "taskName"}


class PhoneMaskingFilter(logging.Filter):
    """Mask phone numbers in every record that passes; never drops a record.

    The message is formatted once (``msg % args``), masked, and stored back as ``msg``
    with empty ``args``, so no formatter can rebuild the unmasked text. An exception is
    formatted to text, masked, stored in ``exc_text``, and ``exc_info`` is cleared: the
    exception object itself still holds the number, and a handler that formats it again
    would print it. Running the filter twice on one record changes nothing more.
    """

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must still be logged, masked
            message = f"{record.msg!s} (unformattable log arguments: {record.args!r})"
        record.msg = mask_phones_in_text(message)
        record.args = ()
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask_phones_in_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_phones_in_text(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, mask_phones_in_text(value))
        return True


class _RiskcastHandler(logging.StreamHandler[TextIO]):
    """The one root handler configure_logging installs (found again by its class)."""


def configure_logging(level: str | int = "INFO") -> None:
    """Log to stderr at ``level`` through the masking filter. Calling it again only
    changes the level: it never adds a second handler."""
    if isinstance(level, str):
        level = level.strip().upper()
    root = logging.getLogger()
    root.setLevel(level)
    handler = next((h for h in root.handlers if isinstance(h, _RiskcastHandler)), None)
    if handler is None:
        handler = _RiskcastHandler(sys.stderr)
        root.addHandler(handler)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    if not any(isinstance(f, PhoneMaskingFilter) for f in handler.filters):
        handler.addFilter(PhoneMaskingFilter())
    # Alembic names each of its built-in plugins at INFO as it is first imported (which the
    # commands do lazily, after this): noise for whoever runs them.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
