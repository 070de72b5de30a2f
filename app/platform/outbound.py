"""Outbound HTTP to destinations someone outside the service chose (an organisation's webhook
URL): which addresses may be reached, and an httpx transport that enforces it on every TCP
connection it opens (a guard against server-side request forgery, SSRF).

Why at the connection and not on the URL: the text of a URL is a poor witness. One address has
many spellings (``127.1``, ``0``, ``0x7f000001``, ``017700000001``, ``2130706433``,
``[::ffff:7f00:1]``), and a host *name* is only an address once resolved, possibly to another
one at every lookup (DNS rebinding). So :class:`GuardedTransport` resolves the host itself,
refuses the connection if **any** address it got is not allowed, and connects to exactly an
address it checked (pinned): there is no second lookup to rebind. TLS still runs against the
host name from the URL (SNI and certificate verification are httpcore's, after the connect), so
pinning costs no verification. Redirects, if a client follows them, open their connections
through the same transport and are checked the same way.

:func:`destination_host` is the registration-time half: it reads a URL's host the way the
resolver will (every IPv4 spelling ``inet_aton`` accepts, IPv6 literals, a trailing dot), so an
address is judged, and stored, in its one canonical form. It can only ever refuse early; the
transport decides.

Webhooks use this (``app/fleet/webhooks/``); operator feeds and TOMP calls, whose URLs staff
configure, do not, but could with a :class:`DestinationPolicy` of their own.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpcore
import httpx

__all__ = [
    "PUBLIC_ONLY",
    "Address",
    "DestinationNotAllowed",
    "DestinationPolicy",
    "DestinationRefused",
    "DestinationUnresolved",
    "GuardedNetworkBackend",
    "GuardedTransport",
    "InvalidHost",
    "Resolver",
    "destination_host",
    "guarded_client",
    "is_public_address",
    "is_public_host_name",
    "system_resolver",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# httpx's own defaults.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _networks(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# IPv4 blocks that are never a public destination. Python's own ``is_global`` is not enough on
# the 3.11 this runs on: it calls multicast (224.0.0.0/4), the 6to4 relay anycast and several
# special blocks global. This list is IANA's special-purpose registry plus multicast and
# "reserved"; ``is_global`` is checked as well.
_NOT_PUBLIC_V4 = _networks(
    "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches this machine on Linux
    "10.0.0.0/8",
    "100.64.0.0/10",  # carrier-grade NAT, shared address space
    "127.0.0.0/8",
    "169.254.0.0/16",  # link-local: cloud metadata services (169.254.169.254) live here
    "172.16.0.0/12",
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation
    "203.0.113.0/24",  # documentation
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the limited broadcast 255.255.255.255
)
# IPv6: only global unicast (2000::/3) can be public. That leaves out loopback, unspecified,
# IPv4-mapped (::ffff:0:0/96) and -compatible addresses, NAT64 (64:ff9b::/96), unique local
# (fc00::/7), link-local (fe80::/10) and multicast (ff00::/8) at once. Inside 2000::/3, these
# are not public either, or carry an IPv4 address a gateway would forward to:
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_NOT_PUBLIC_V6 = _networks(
    "2001::/23",  # IETF protocol assignments, Teredo (2001::/32, embeds IPv4) among them
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4: embeds an IPv4 address
    "3fff::/20",  # documentation (RFC 9637)
)


def is_public_address(address: Address) -> bool:
    """Whether ``address`` is a globally reachable unicast address: nothing on this machine, on
    a private, link-local, shared or special-purpose network, no multicast, no IPv6 form that
    embeds an IPv4 address."""
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not any(address in n for n in _NOT_PUBLIC_V4)
    if address.scope_id:  # a zone id only ever qualifies a link-local address
        return False
    return (
        address in _GLOBAL_UNICAST_V6
        and address.is_global
        and not any(address in n for n in _NOT_PUBLIC_V6)
    )


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Which addresses an outbound connection may reach: public ones, and those in the networks
    of ``also_allowed`` (loopback for a developer's or a test's local receiver, say)."""

    also_allowed: tuple[Network, ...] = ()

    def permits(self, address: Address) -> bool:
        if is_public_address(address):
            return True
        return any(
            address.version == network.version and address in network
            for network in self.also_allowed
        )


PUBLIC_ONLY = DestinationPolicy()


# --- reading a host as the resolver will -------------------------------------------------------


class InvalidHost(ValueError):
    """A URL host no connection could use as written; the message completes "the host …"."""


_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
# inet_aton's parts: decimal, octal (leading 0) or hex (0x); the last label of a host that looks
# like one of these makes the whole host a number to the resolver, never a name. (Always used
# with fullmatch: "$" would let a trailing newline through.)
_DECIMAL = re.compile(r"[0-9]+")
_OCTAL = re.compile(r"0[0-7]+")
_HEX = re.compile(r"0x[0-9a-f]*")
# Names for this machine or a local network (RFC 6761, RFC 6762, RFC 8375, ICANN's private-use
# .internal): never a public endpoint, whatever they resolve to today.
_LOCAL_SUFFIXES = ("localhost", "local", "internal", "home.arpa", "localdomain")


def destination_host(host: str) -> Address | str:
    """``host`` (a URL's host: ASCII, IDNA-encoded, IPv6 without brackets) the way a connection
    will read it: an address in its canonical form, or a lower-case host name without the
    trailing dot. Raises :class:`InvalidHost`."""
    text = host.lower()
    if ":" in text:
        if "%" in text:
            raise InvalidHost("must not carry an IPv6 zone id")
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise InvalidHost("is not a valid IPv6 address") from None
    # One trailing dot is the fully qualified spelling of the same name ("localhost.").
    text = text.removesuffix(".")
    labels = text.split(".")
    if _DECIMAL.fullmatch(labels[-1]) or _HEX.fullmatch(labels[-1]):
        return _inet_aton(labels)
    if not text or len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidHost("is not a valid host name")
    # Belt and braces: whatever this machine's resolver reads as a number without a lookup is
    # an address, even a spelling the rules above do not know.
    try:
        found = socket.getaddrinfo(text, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return text
    return ipaddress.ip_address(found[0][4][0])


def _inet_aton(labels: Sequence[str]) -> ipaddress.IPv4Address:
    """IPv4 as ``inet_aton`` and browsers (WHATWG URL) read it: one to four parts, each decimal,
    octal or hex, the last filling the bytes left (``127.1`` is 127.0.0.1, ``10.1`` is
    10.0.0.1, ``0x7f000001`` and ``2130706433`` are 127.0.0.1)."""
    if len(labels) > 4:
        raise InvalidHost("is not a valid IPv4 address")
    parts = []
    for label in labels:
        if _HEX.fullmatch(label):
            parts.append(int(label[2:] or "0", 16))
        elif _OCTAL.fullmatch(label):
            parts.append(int(label, 8))
        elif label == "0" or (_DECIMAL.fullmatch(label) and not label.startswith("0")):
            parts.append(int(label))
        else:  # empty, or digits 8/9 after a leading 0, or letters
            raise InvalidHost("is not a valid IPv4 address")
    *leading, last = parts
    if any(part > 0xFF for part in leading) or last >= 256 ** (4 - len(leading)):
        raise InvalidHost("is not a valid IPv4 address")
    value = last
    for index, part in enumerate(leading):
        value += part << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def is_public_host_name(name: str) -> bool:
    """Whether a host name (as :func:`destination_host` returns it) can name a public endpoint:
    fully qualified, and not a name for this machine or a local network. Where it resolves to
    is checked at every connection, not here."""
    if "." not in name:  # "redis", "metadata": found through the search domains, internal
        return False
    return not any(name == s or name.endswith("." + s) for s in _LOCAL_SUFFIXES)


# --- the guard at connect time -------------------------------------------------------------------


class DestinationRefused(httpx.ConnectError):
    """The guard refused a connection: nothing was sent to the destination. Its message is
    deliberately bland; ``reason`` names the host and addresses, for our logs only."""

    def __init__(self, reason: str, *, host: str) -> None:
        super().__init__("destination not allowed")
        self.reason = reason
        self.host = host


class DestinationNotAllowed(DestinationRefused):
    """The host resolved to at least one address the policy does not permit."""


class DestinationUnresolved(DestinationRefused):
    """The host did not resolve (no answer, an error, or no answer in time)."""


class Resolver(Protocol):
    """A host name to the addresses a TCP connection to it may use."""

    async def __call__(self, host: str, port: int) -> Sequence[Address]: ...


async def system_resolver(host: str, port: int) -> list[Address]:
    """The operating system's resolver (getaddrinfo), as a connect by name would use it."""
    found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[Address] = []
    for family, *_, sockaddr in found:
        text = str(sockaddr[0])
        if family == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
            text = f"{text}%{sockaddr[3]}"  # keep the zone: fe80::1%2 is not fe80::1
        addresses.append(ipaddress.ip_address(text))
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer with the check in front: resolve, refuse unless every address
    is permitted, connect to a checked address (never to the name)."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        resolver: Resolver = system_resolver,
        network: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._network = network if network is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = math.inf if timeout is None else anyio.current_time() + timeout
        addresses = await self.vetted_addresses(host, port, lookup_seconds=timeout)
        failure: Exception | None = None
        for index, address in enumerate(addresses):
            left = deadline - anyio.current_time()
            if left <= 0:
                break
            # An address that does not answer may not eat the time of the ones after it.
            share = None if math.isinf(left) else left / (len(addresses) - index)
            try:
                return await self._network.connect_tcp(
                    str(address),
                    port,
                    timeout=share,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        if failure is not None:
            raise failure
        raise httpcore.ConnectTimeout(f"connecting to {host} timed out")

    async def vetted_addresses(
        self, host: str, port: int, *, lookup_seconds: float | None = None
    ) -> list[Address]:
        """The addresses a connection to ``host`` may use, or :class:`DestinationRefused`."""
        try:
            literal: Address | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            found: Sequence[Address] = [literal]
        else:
            try:
                with anyio.fail_after(lookup_seconds):
                    found = await self._resolver(host, port)
            except TimeoutError:
                raise DestinationUnresolved("lookup timed out", host=host) from None
            except (OSError, UnicodeError, ValueError) as exc:
                raise DestinationUnresolved(f"lookup failed: {exc}", host=host) from None
        if not found:
            raise DestinationUnresolved("lookup found no address", host=host)
        refused = [a for a in found if not self._policy.permits(a)]
        if refused:
            # Any, not all: a name with one public and one internal address would otherwise
            # reach the internal one whenever the public one does not answer.
            listed = ", ".join(dict.fromkeys(str(a) for a in refused))
            raise DestinationNotAllowed(f"{host} resolves to {listed}", host=host)
        return list(dict.fromkeys(found))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationNotAllowed("a unix socket is not an outbound destination", host=path)

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (its pooling, streaming and error mapping) over a connection pool
    whose every new connection goes through :class:`GuardedNetworkBackend`. Never a proxy, and
    no environment settings (``trust_env``): a proxy would connect for us, unchecked."""

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = _LIMITS,
        network: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        # httpx (0.28) takes no network backend: replace the pool it just built with the same
        # pool over ours. tests/app/test_outbound.py fails if a release changes that.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(policy, resolver=resolver, network=network),
        )


def guarded_client(
    policy: DestinationPolicy,
    *,
    timeout: httpx.Timeout,
    resolver: Resolver = system_resolver,
    verify: ssl.SSLContext | bool = True,
    headers: dict[str, str] | None = None,
    follow_redirects: bool = False,
) -> httpx.AsyncClient:
    """An :class:`httpx.AsyncClient` whose every connection is checked against ``policy``."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, resolver=resolver, verify=verify),
        timeout=timeout,
        headers=headers,
        follow_redirects=follow_redirects,
        trust_env=False,
    )
