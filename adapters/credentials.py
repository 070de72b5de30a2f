"""Credentials for operators' APIs, and the headers they put on outbound requests.

Three kinds, as operators' feeds and APIs ask for them: a static bearer token, an API key in a
named header, and OAuth2 client credentials (a token fetched from the operator's token endpoint,
cached until shortly before it expires). They are stored server-side (``provider_credentials``,
migration 0005), set by staff, used by adapters, and never returned by the API: no field of
these classes shows a secret in ``repr``, and nothing here logs one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from adapters.base import AdapterError

CredentialKind = Literal["bearer_token", "api_key", "oauth2_client_credentials"]

# RFC 7230 token characters: what a header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
MAX_SECRET_CHARS = 4096
# A token is renewed this long before the operator said it expires.
TOKEN_RENEW_MARGIN_SECONDS = 30.0


class CredentialsError(ValueError):
    """The credentials given are unusable; the message says why (and shows no secret)."""


def _secret(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CredentialsError(f"{what} must be a non-empty string")
    # Header values go out as ASCII: anything else would fail every sync later, not now.
    if len(value) > MAX_SECRET_CHARS or not all(" " <= c <= "~" for c in value):
        raise CredentialsError(
            f"{what} must be at most {MAX_SECRET_CHARS} printable ASCII characters"
        )
    return value


@dataclass(frozen=True, slots=True)
class BearerToken:
    token: str = field(repr=False)
    kind: CredentialKind = "bearer_token"


@dataclass(frozen=True, slots=True)
class ApiKeyHeader:
    header: str
    value: str = field(repr=False)
    kind: CredentialKind = "api_key"


@dataclass(frozen=True, slots=True)
class OAuth2ClientCredentials:
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str | None = None
    kind: CredentialKind = "oauth2_client_credentials"


OperatorCredentials = BearerToken | ApiKeyHeader | OAuth2ClientCredentials


def parse_credentials(kind: str, values: dict[str, Any]) -> OperatorCredentials:
    """Validate stored or submitted credentials; :class:`CredentialsError` says what is wrong."""
    if kind == "bearer_token":
        return BearerToken(_secret(values.get("token"), "the bearer token"))
    if kind == "api_key":
        header = values.get("header")
        if not isinstance(header, str) or not _HEADER_NAME.match(header):
            raise CredentialsError("the API key header must be a valid HTTP header name")
        if header.lower() in _FORBIDDEN_HEADERS:
            raise CredentialsError(f"the API key cannot go in the {header} header")
        return ApiKeyHeader(header, _secret(values.get("value"), "the API key"))
    if kind == "oauth2_client_credentials":
        token_url = values.get("token_url")
        parts = urlsplit(token_url) if isinstance(token_url, str) else None
        if parts is None or parts.scheme not in {"http", "https"} or not parts.hostname:
            raise CredentialsError("the OAuth2 token URL must be an http(s) URL")
        scope = values.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise CredentialsError("the OAuth2 scope must be a string")
        return OAuth2ClientCredentials(
            token_url=str(token_url),
            client_id=_secret(values.get("client_id"), "the OAuth2 client id"),
            client_secret=_secret(values.get("client_secret"), "the OAuth2 client secret"),
            scope=scope or None,
        )
    raise CredentialsError(
        f"unknown credentials kind {kind!r} (bearer_token, api_key, oauth2_client_credentials)"
    )


def credentials_values(credentials: OperatorCredentials) -> dict[str, Any]:
    """What is stored (the kind is stored beside it)."""
    if isinstance(credentials, BearerToken):
        return {"token": credentials.token}
    if isinstance(credentials, ApiKeyHeader):
        return {"header": credentials.header, "value": credentials.value}
    return {
        "token_url": credentials.token_url,
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "scope": credentials.scope,
    }


class OperatorAuth:
    """Headers for requests to one operator; fetches and caches OAuth2 tokens."""

    def __init__(self, credentials: OperatorCredentials) -> None:
        self.credentials = credentials
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"OperatorAuth({self.credentials.kind})"

    async def headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        c = self.credentials
        if isinstance(c, BearerToken):
            return {"Authorization": f"Bearer {c.token}"}
        if isinstance(c, ApiKeyHeader):
            return {c.header: c.value}
        return {"Authorization": f"Bearer {await self._oauth2_token(http, c)}"}

    def invalidate(self, sent: Mapping[str, str]) -> None:
        """The operator refused a request with these headers (401): forget the token if they
        carried the current one. Requests refused concurrently with the same stale token then
        lead to one new token, not one each."""
        if self._token is not None and sent.get("Authorization") == f"Bearer {self._token}":
            self._token = None
            self._expires_at = 0.0

    async def _oauth2_token(self, http: httpx.AsyncClient, c: OAuth2ClientCredentials) -> str:
        async with self._lock:  # one token request at a time, not one per feed file
            if self._token is not None and time.monotonic() < self._expires_at:
                return self._token
            form = {"grant_type": "client_credentials"}
            if c.scope:
                form["scope"] = c.scope
            try:
                # RFC 6749 2.3.1: client_secret_basic.
                response = await http.post(
                    c.token_url,
                    data=form,
                    auth=httpx.BasicAuth(c.client_id, c.client_secret),
                    headers={"Accept": "application/json"},
                )
            except httpx.HTTPError as exc:
                raise AdapterError(
                    f"OAuth2 token request failed: {exc.__class__.__name__}"
                ) from exc
            if response.status_code != 200:
                # The body may echo what was sent: it is not shown.
                raise AdapterError(f"OAuth2 token endpoint answered HTTP {response.status_code}")
            try:
                body = response.json()
                token = body["access_token"]
                lifetime = float(body.get("expires_in") or 3600)
            except (ValueError, KeyError, TypeError) as exc:
                raise AdapterError("OAuth2 token endpoint sent no usable access_token") from exc
            if not isinstance(token, str) or not token:
                raise AdapterError("OAuth2 token endpoint sent no usable access_token")
            self._token = token
            self._expires_at = time.monotonic() + max(0.0, lifetime - TOKEN_RENEW_MARGIN_SECONDS)
            return token
