"""What we accept as an email address: one plain mailbox, the same for sign-up and invitations.

A shape check, not RFC 5322: whether the address works is for a mail to find out. What it
refuses is what would let one address stand for several or change a mail's headers: white
space and control characters, and ``, ; < > ( ) [ ] \\ " :`` (lists, display names, comments,
quoted and routed forms). Letters beyond ASCII are allowed (internationalised addresses).
"""

from __future__ import annotations

import re

from app.platform.errors import InvalidInput

__all__ = ["MAX_EMAIL_LENGTH", "normalized_email"]

MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
_BAD = r"@\s\x00-\x1f\x7f,;<>()\[\]\\\":"  # never inside an address we take
EMAIL_SHAPE = re.compile(rf"[^{_BAD}]+@[^{_BAD}.]+(\.[^{_BAD}.]+)+")


def normalized_email(email: str) -> str:
    """The address without surrounding blanks; INVALID_EMAIL when it is not one mailbox."""
    email = email.strip()
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL_SHAPE.fullmatch(email):
        raise InvalidInput("that is not an email address", code="INVALID_EMAIL")
    return email
