"""The signing secret's form and the ``Mobility-Signature`` header a receiver checks
(docs/webhooks.md is the receiver's side)."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Mobility-Signature"
SECRET_PREFIX = "whsec_"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Mobility-Signature`` header's value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>`` of
    ``b"<t>." + body`` keyed with the whole secret (``whsec_`` included), as UTF-8."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"
