"""Which links from operators may reach a rider's app: rental deep links (``rental_uris``),
app-store and web links. An operator's feed or push is outside input, and these strings end
up as ``href``s and intents on riders' phones.

Allowed: ``http``/``https`` URLs with a host, and app deep links (``scheme://…`` or
``scheme:…`` with a custom scheme, as GBFS's ``rental_uris.android`` / ``ios`` use). Refused:
schemes that run code or read local data in a browser or web view (``javascript:``,
``data:``, ``vbscript:``, ``file:`` …), anything with whitespace or control characters, and
anything without a scheme.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["MAX_URI_LENGTH", "safe_link"]

MAX_URI_LENGTH = 2048
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_UNSAFE_SCHEMES = frozenset(
    {"javascript", "vbscript", "data", "file", "blob", "filesystem", "about", "view-source"}
)
_WHITESPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")


def safe_link(value: str) -> str | None:
    """``value`` when it is a link we may hand to a rider's app, else None."""
    if not value or len(value) > MAX_URI_LENGTH or _WHITESPACE_OR_CONTROL.search(value):
        return None
    match = _SCHEME.match(value)
    if match is None:
        return None
    scheme = match.group(1).lower()
    if scheme in _UNSAFE_SCHEMES:
        return None
    if scheme in ("http", "https"):
        try:
            parts = urlsplit(value)
        except ValueError:
            return None
        if not parts.hostname:
            return None
    return value
