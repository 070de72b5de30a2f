"""GraphQL over HTTP's two response media types, one rule for both request paths (the fast
path and Strawberry's view).

A client that asks for ``application/graphql-response+json`` (Apollo Client 4 does, before
``application/json``) gets the spec's status codes: a request that never reached execution
(it did not parse or validate, its variables did not coerce, its persisted query is unknown,
it was rate limited) answers 4xx with no ``data`` entry. With ``application/json`` (or no
preference) every GraphQL answer is 200, as the spec requires for that type and as older
clients expect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"
APPLICATION_JSON: Final = "application/json"
_RATE_LIMITED = "RATE_LIMITED"


def prefers_graphql_response_json(accept: str | None) -> bool:
    """Whether the Accept header names ``application/graphql-response+json`` at least as
    highly as ``application/json`` (a wildcard counts for ``application/json`` only, so
    ``*/*`` or no header keeps ``application/json``, as the spec asks)."""
    if not accept:
        return False
    ours = 0.0
    plain = 0.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        quality = _quality(params)
        if media == GRAPHQL_RESPONSE_JSON:
            ours = max(ours, quality)
        elif media in (APPLICATION_JSON, "application/*", "*/*"):
            plain = max(plain, quality)
    return ours > 0 and ours >= plain


def asks_for_a_page(accept: str | None) -> bool:
    """Whether the Accept header is a browser's navigation: ``text/html`` named, and neither
    JSON type named (``*/*`` alone, as curl sends, is not a page)."""
    ranked = {part.strip().partition(";")[0].strip().lower() for part in (accept or "").split(",")}
    return "text/html" in ranked and not ranked & {APPLICATION_JSON, GRAPHQL_RESPONSE_JSON}


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(1.0, max(0.0, float(value.strip())))
            except ValueError:
                return 0.0
    return 1.0


def content_type(graphql_response: bool) -> str:
    return f"{GRAPHQL_RESPONSE_JSON if graphql_response else APPLICATION_JSON}; charset=utf-8"


def is_request_error(payload: Mapping[str, Any]) -> bool:
    """No execution happened: no data, and no error belongs to a field (execution errors
    always carry a ``path``)."""
    errors: Sequence[Mapping[str, Any]] = payload.get("errors") or ()
    return payload.get("data") is None and bool(errors) and all("path" not in e for e in errors)


def shape(payload: dict[str, Any], graphql_response: bool) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body for one formatted result under the negotiated media type."""
    if not graphql_response or not is_request_error(payload):
        return 200, payload
    codes = {(e.get("extensions") or {}).get("code") for e in payload["errors"]}
    body = {k: v for k, v in payload.items() if k != "data"}
    return (429 if _RATE_LIMITED in codes else 400), body
