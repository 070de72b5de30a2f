"""Domain errors with stable codes. The API maps them to ``extensions.code``; never masked."""

from __future__ import annotations


class DomainError(Exception):
    code: str = "DOMAIN_ERROR"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message


class InvalidInput(DomainError):
    """The caller sent something we cannot answer; the message says what to change."""

    code = "BAD_USER_INPUT"


class NotFound(DomainError):
    code = "NOT_FOUND"


class UnknownProvider(InvalidInput):
    code = "UNKNOWN_PROVIDER"
