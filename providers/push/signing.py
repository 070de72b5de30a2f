"""Who sent a push request: the provider's signing secret, the ``X-Mobility-Signature`` and
``X-Mobility-Timestamp`` headers and their check, and :class:`PushRejected`, the answer to a
request refused as a whole (here for its signature; in ``records`` for its envelope).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from app.platform.errors import DomainError

SIGNATURE_HEADER = "X-Mobility-Signature"
TIMESTAMP_HEADER = "X-Mobility-Timestamp"
SIGNATURE_SCHEME = "v1"
# A signed request is good for this long (either way, for clock skew): a captured request
# cannot be replayed later, and a retry within the window is harmless (see the package docstring).
MAX_SKEW_SECONDS = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def new_secret() -> str:
    """A fresh signing secret for a provider: 256 random bits, URL-safe."""
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Mobility-Signature`` value for ``body`` signed at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{SIGNATURE_SCHEME}={mac.hexdigest()}"


class PushRejected(DomainError):
    """The whole request is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float,
) -> None:
    """Raise :class:`PushRejected` (401) unless the signature and its timestamp are good."""
    if not timestamp_header or not signature_header:
        raise PushRejected(
            401,
            "SIGNATURE_MISSING",
            f"sign the request: headers {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required",
        )
    if not _TIMESTAMP.fullmatch(timestamp_header):
        raise PushRejected(
            401, "BAD_TIMESTAMP", f"{TIMESTAMP_HEADER} must be POSIX seconds, an integer"
        )
    timestamp = int(timestamp_header)
    if abs(now - timestamp) > MAX_SKEW_SECONDS:
        raise PushRejected(
            401,
            "STALE_TIMESTAMP",
            f"{TIMESTAMP_HEADER} is more than {MAX_SKEW_SECONDS} s from the server's clock; "
            "sign each request when it is sent",
        )
    expected = sign(secret, timestamp, body)
    # Several signatures may be sent (comma-separated) while a secret is being rotated.
    # Compared as bytes: headers arrive as latin-1 text, and compare_digest refuses str
    # with non-ASCII characters (a 500 instead of a 401).
    offered = [s.strip().encode("latin-1") for s in signature_header.split(",")]
    if not any(hmac.compare_digest(expected.encode(), s) for s in offered):
        raise PushRejected(
            401, "BAD_SIGNATURE", "the signature does not match the body and timestamp"
        )
