"""The HTTP edge: request size, the server's header and body deadlines and connection cap, and
which browser origins may call the API (CORS).

Read by app/main.py (``max_request_bytes`` for app/platform/edge.py, ``cors_origins``) and
app/server.py
(``mobility serve``: the timeouts, ``max_connections``, ``max_request_bytes`` for WebSockets).
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from app.platform.settings.base import MobilityBaseSettings


class HttpSettings(MobilityBaseSettings):
    # Every request body and WebSocket message (app/platform/edge.py); push ingest has its own,
    # larger
    # cap (providers/push.MAX_BODY_BYTES). A GraphQL document is at most max_tokens anyway.
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    # `mobility serve` (app/server.py): a request's headers, and then its body, must arrive
    # within these; at most max_connections connections and requests in flight per process.
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=4096, ge=1)
    # Browser apps of these origins (scheme://host[:port]) may call the API: CORS, preflight
    # included. None by default; a comma-separated list or a JSON array. Credentials travel in
    # the Authorization header (never cookies), so no origin is ever sent "allow credentials".
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_origins(cls, value: object) -> tuple[str, ...]:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError("MOBILITY_CORS_ORIGINS: not a JSON array") from exc
            else:
                value = [part for part in text.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError("MOBILITY_CORS_ORIGINS: a list of origins such as https://app.example")
        return tuple(_origin(v) for v in value)


_ORIGIN = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


def _origin(value: str) -> str:
    """An origin exactly as a browser sends it in ``Origin``: scheme, host, optional port; no
    path, no trailing slash, no wildcard (the list is an allow-list)."""
    origin = value.strip().lower()
    if not _ORIGIN.match(origin):
        raise ValueError(
            f"MOBILITY_CORS_ORIGINS: {value.strip()!r} is not an origin; write it as "
            "https://host or http://host:port, without a path or a wildcard"
        )
    return origin
