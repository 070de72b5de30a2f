"""The SMTP server setting (``MOBILITY_SMTP_URL``) read into where to connect and how: its own
module so that settings can check the URL at start-up and app/platform/mail.py can use it, neither
importing the other."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["SMTP_URL_SHAPE", "SmtpTarget", "smtp_target"]


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool


SMTP_URL_SHAPE = (
    "MOBILITY_SMTP_URL must look like smtp://[user:password@]host[:port] or smtps://… "
    "(percent-encode '/', '?', '#', '@' and ':' in the user and password)"
)


def smtp_target(url: str) -> SmtpTarget:
    """The server of ``MOBILITY_SMTP_URL``; ValueError (always SMTP_URL_SHAPE: the URL may
    hold a password, and parsers quote the part they choke on) when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(SMTP_URL_SHAPE) from None
    if (
        parts.scheme not in {"smtp", "smtps"}
        or not parts.hostname
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
    ):
        raise ValueError(SMTP_URL_SHAPE)
    implicit_tls = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if implicit_tls else 587),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit_tls,
    )
