"""Log lines that outside input cannot forge, in one of two formats (docs/operations-logs.md):

- **json** (the long-running processes' default): one JSON object per line, ``timestamp``
  (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``request_id`` when there is one
  (app/platform/request_id.py), the record's ``extra=`` fields, and ``exc`` (the traceback, one
  string). JSON escapes every control character inside a string, and this formatter escapes
  the few that JSON allows raw but a reader may take for a line break or a terminal command
  (DEL, the C1 controls, U+2028, U+2029): a value from a caller is always inside one string of
  one line, and cannot add a field or a line.
- **text** (for a person at a terminal): ``LEVEL logger [request id]: message key=value``, each
  control character in the message and the values written as an escape (``\\n``, ``\\x00``).
  Tracebacks, which are ours, keep their lines.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

from app.platform.request_id import REQUEST_ID

__all__ = [
    "EscapingFormatter",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "escape_controls",
]

FORMAT = "%(levelname)s %(name)s: %(message)s"
# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# What JSON lets stand raw in a string but a reader may still split a line on (Python's
# str.splitlines does at U+2028, U+2029 and some C1 controls) or a terminal may act on.
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029]")

# The attributes every LogRecord has: anything else on a record came from ``extra=``. Not
# uvicorn's ``color_message`` either: its message again, with terminal colour codes.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "request_id", "color_message"}
)
# The fields a line's own: an ``extra=`` field of the same name is written as ``extra_<name>``.
_OWN_FIELDS = frozenset({"timestamp", "level", "logger", "message", "request_id", "exc", "stack"})


def escape_controls(text: str) -> str:
    return _CONTROLS.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def request_id_of(record: logging.LogRecord) -> str | None:
    """The id a record was logged with explicitly (``extra={"request_id": ...}``: a webhook
    delivery's event's), else the one of the context it was logged in."""
    explicit = record.__dict__.get("request_id")
    if isinstance(explicit, str):
        return explicit
    return REQUEST_ID.get()


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        (f"extra_{key}" if key in _OWN_FIELDS else key): value
        for key, value in record.__dict__.items()
        if key not in _RECORD_ATTRIBUTES
    }


def _json_line(document: dict[str, Any]) -> str:
    try:
        text = orjson.dumps(document, default=str).decode()
    except TypeError:
        # What orjson refuses (a string with a lone surrogate, an integer over 64 bits): the
        # standard library writes it, every non-ASCII character as an escape.
        text = json.dumps(document, default=str, ensure_ascii=True, separators=(",", ":"))
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = _extras(record)
        document["timestamp"] = (
            datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        document["level"] = record.levelname
        document["logger"] = record.name
        document["message"] = record.getMessage()
        request_id = request_id_of(record)
        if request_id is not None:
            document["request_id"] = request_id
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exc"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return _json_line(document)


class EscapingFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class TextFormatter(EscapingFormatter):
    """``LEVEL logger [request id]: message key=value ...``, every part escaped."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname} {record.name}"
        request_id = request_id_of(record)
        if request_id is not None:
            line += f" [{escape_controls(request_id)}]"
        line += f": {escape_controls(record.message)}"
        for key, value in _extras(record).items():
            line += f" {escape_controls(key)}={escape_controls(str(value))}"
        return line


def configure_logging(
    level: int | str = logging.WARNING,
    log_format: Literal["json", "text"] = "text",
    *,
    stream: TextIO | None = None,
) -> None:
    """The root handler (on ``stream``, stderr by default) with the format's formatter;
    uvicorn's and taskiq's loggers propagate to it (the server is started without a logging
    config of its own, the worker without taskiq's)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs each request's whole URL at INFO, and a URL may carry a credential (a feed's
    # ?key=, a webhook endpoint's token in its path): our own lines say what was called
    # (app/platform/request_id.py, app/fleet/webhooks/delivery.py), without them.
    logging.getLogger("httpx").setLevel(logging.WARNING)
