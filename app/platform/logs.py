"""Log lines that outside input cannot forge: every control character in a message (a newline
in a URL path, a NUL in a header value, an escape sequence for the terminal) is written as an
escape (``\\n``, ``\\x00``), so one record is always one line of its own. Tracebacks, which
are ours, keep their lines."""

from __future__ import annotations

import logging
import re

__all__ = ["EscapingFormatter", "configure_logging", "escape_controls"]

FORMAT = "%(levelname)s %(name)s: %(message)s"
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    return _CONTROLS.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


class EscapingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def configure_logging(level: int = logging.WARNING) -> None:
    """The root handler with the escaping formatter; uvicorn's loggers propagate to it (the
    server is started without a logging config of its own)."""
    handler = logging.StreamHandler()
    handler.setFormatter(EscapingFormatter(FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
