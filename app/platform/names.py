"""What a name people choose may hold (a rider's display name, an organisation's or cost
centre's name): names are shown to other people and go into emails, CSV reports and logs.

Refused: control characters and line or paragraph separators (a forged line in a log or an
email header), and the invisible formatting characters that reorder or hide text (bidi
overrides and isolates such as U+202E, which make "gnp.exe" read as "exe.png"), except the
zero-width (non-)joiners that some scripts need to spell words.
"""

from __future__ import annotations

import unicodedata

from app.platform.errors import InvalidInput

__all__ = ["forbidden_character", "refuse_forbidden_characters"]

_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
_ALLOWED_FORMAT = frozenset({"\u200c", "\u200d"})  # ZWNJ, ZWJ: Persian, Indic scripts, emoji


def forbidden_character(value: str) -> str | None:
    """The first character a name may not hold, as ``U+XXXX``, or None."""
    for char in value:
        if char in _ALLOWED_FORMAT:
            continue
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


def refuse_forbidden_characters(value: str, what: str, *, code: str) -> None:
    """:class:`InvalidInput` (with ``code``) when ``value`` holds a character a name may not;
    ``what`` names the name in the message ("a display name")."""
    bad = forbidden_character(value)
    if bad is not None:
        raise InvalidInput(
            f"{what} cannot hold control or invisible formatting characters ({bad})", code=code
        )
