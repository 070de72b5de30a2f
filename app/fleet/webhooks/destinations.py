"""Where a delivery may connect: the early check of an endpoint's URL at registration, the
destination policy every connection is checked against (app/platform/outbound.py), and what the
delivery log says when a destination is refused."""

from __future__ import annotations

import ipaddress

import httpx

from app.platform import outbound
from app.platform.errors import InvalidInput
from app.platform.settings import Settings

MAX_URL_LENGTH = 2048
# Outside production, loopback is a permitted destination too (and plain http to it): the local
# receivers of tests and of a developer's machine. Nothing else that is not public, anywhere.
_LOCAL_RECEIVERS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# What the log says when the guard refused the destination (app/platform/outbound.py). One text for
# a
# name that does not resolve and for one that resolves to a non-public address, with no address
# or port: the log must not tell a tenant which internal names exist or which ports are open.
DESTINATION_REFUSED = (
    "destination not allowed: the endpoint's host must resolve to public addresses only"
)
# A stored URL httpx will not parse (stored before today's checks).
UNUSABLE_URL = "the endpoint's URL cannot be used: register it again"


def destination_policy(settings: Settings) -> outbound.DestinationPolicy:
    """Where deliveries may connect: public addresses; outside production, loopback too."""
    if settings.environment == "production":
        return outbound.PUBLIC_ONLY
    return outbound.DestinationPolicy(also_allowed=_LOCAL_RECEIVERS)


def canonical_url(url: str, settings: Settings) -> str:
    """The URL as stored, its host in canonical form; or INVALID_WEBHOOK_URL.

    An early, friendly refusal only: a name's addresses are checked at every connection
    (``runner.webhook_http_client``), since DNS may answer differently by then."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise _invalid_url(f"the URL is longer than {MAX_URL_LENGTH}")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _invalid_url(f"not a URL: {exc}") from None
    if parsed.scheme not in ("https", "http"):
        raise _invalid_url("the URL must use https")
    if not parsed.raw_host:
        raise _invalid_url("the URL needs a host")
    if parsed.userinfo:
        # Credentials in the URL would be stored and listed in the clear: the signature is how
        # the receiver authenticates us. (Also the "https://good.example@127.0.0.1/" trick.)
        raise _invalid_url("the URL must not carry credentials")
    if parsed.fragment:
        raise _invalid_url("the URL must not have a fragment")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise _invalid_url("the URL's port must be 1-65535")
    try:
        host = outbound.destination_host(parsed.raw_host.decode("ascii"))
    except outbound.InvalidHost as exc:
        raise _invalid_url(f"the URL's host {exc}") from None
    production = settings.environment == "production"
    if isinstance(host, str):
        local = host == "localhost" or host.endswith(".localhost")
        if production and not outbound.is_public_host_name(host):
            raise _invalid_url("the URL's host must be a public, fully qualified host name")
        canonical = host
    else:
        local = any(host in network for network in _LOCAL_RECEIVERS)
        if not destination_policy(settings).permits(host):
            raise _invalid_url("the URL's host must be a public address")
        canonical = str(host)
    if parsed.scheme != "https" and not (local and not production):
        raise _invalid_url("the URL must use https")
    return str(parsed.copy_with(host=canonical))


def _invalid_url(message: str) -> InvalidInput:
    return InvalidInput(message, code="INVALID_WEBHOOK_URL")
