"""The outbound guard (app/platform/outbound.py) on its own: which addresses are public, how a URL's
host is read, and the transport that resolves, checks and connects to the checked address."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.platform import outbound
from tests.outbound_support import (
    STAND_IN_PUBLIC,
    Canary,
    ScriptedResolver,
    TestCertificate,
    TlsReceiver,
    canary,
    record_connects,
    test_certificate,
    tls_receiver,
)

# Public, as the stand-in is for these tests (everything else keeps the production rule).
WITH_STAND_IN = outbound.DestinationPolicy(
    also_allowed=(ipaddress.ip_network(f"{STAND_IN_PUBLIC}/32"),)
)
TIMEOUT = httpx.Timeout(5.0)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
        ("2a00:1450:4001:82a::200e", True),
        ("0.0.0.0", False),
        ("0.1.2.3", False),
        ("10.0.0.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("169.254.169.254", False),  # cloud metadata
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.0.0.8", False),
        ("192.0.2.1", False),
        ("192.88.99.1", False),  # 3.11's ipaddress calls this global
        ("192.168.1.1", False),
        ("198.18.0.1", False),
        ("198.51.100.7", False),
        ("203.0.113.9", False),
        ("224.0.0.1", False),  # multicast: 3.11's ipaddress calls it global
        ("233.252.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", False),  # IPv4-mapped: never, whatever it maps
        ("::7f00:1", False),  # IPv4-compatible: 3.11's ipaddress calls it global
        ("64:ff9b::7f00:1", False),  # NAT64: 3.11's ipaddress calls it global
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1: 3.11's ipaddress calls it global
        ("2001::1", False),  # Teredo
        ("2001:db8::1", False),
        ("3fff::1", False),  # documentation (RFC 9637)
        ("fc00::1", False),
        ("fd00::1", False),
        ("fe80::1", False),
        ("fe80::1%2", False),
        ("ff02::1", False),
    ],
)
def test_only_globally_reachable_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert outbound.is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("host", "read_as"),
    [
        # Every IPv4 spelling inet_aton (and so the resolver) accepts, as the address it is.
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("10.1", "10.0.0.1"),
        ("169.254.169.254.", "169.254.169.254"),
        ("134744072", "8.8.8.8"),
        ("::1", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("0:0:0:0:0:ffff:7f00:1", "::ffff:7f00:1"),
        # Names: lower case, without the trailing dot.
        ("localhost.", "localhost"),
        ("Hooks.Example.ORG.", "hooks.example.org"),
        ("xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_a_host_is_read_as_the_resolver_reads_it(host: str, read_as: str) -> None:
    read = outbound.destination_host(host)
    assert str(read) == read_as
    if not isinstance(read, str):
        # The machine's own reading agrees (no DNS: AI_NUMERICHOST).
        found = socket.getaddrinfo(host.removesuffix("."), None, flags=socket.AI_NUMERICHOST)
        assert ipaddress.ip_address(found[0][4][0]) == read


@pytest.mark.parametrize(
    "host",
    [
        "1.2.3.4.5",
        "256.0.0.1",
        "1.2.3.256",
        "4294967296",
        "1.2.3.09",  # 09 is no octal number; a resolver would look the "name" up
        "example.123",  # a number as the last label makes the host an address, a bad one
        "%31%32%37.0.0.1",
        "a..b.example",
        "-a.example",
        "a b.example",
        "hooks.example.org\n",
        "127.0.0.1\n",
        "fe80::1%eth0",
        "fe80::1%25eth0",
        ":::1",
        ".",
        "",
    ],
)
def test_hosts_no_connection_could_use_as_written_are_invalid(host: str) -> None:
    with pytest.raises(outbound.InvalidHost):
        outbound.destination_host(host)


@pytest.mark.parametrize(
    ("name", "public"),
    [
        ("hooks.example.org", True),
        ("127.0.0.1.nip.io", True),  # a name: where it resolves is the connection's business
        ("localhost", False),
        ("api.localhost", False),
        ("printer.local", False),
        ("metadata.google.internal", False),
        ("router.home.arpa", False),
        ("box.localdomain", False),
        ("metadata", False),  # one label: found through the search domains
        ("redis", False),
    ],
)
def test_host_names_for_this_machine_or_network_are_not_public(name: str, public: bool) -> None:
    assert outbound.is_public_host_name(name) is public


# --- the transport ------------------------------------------------------------------------------


@pytest.fixture
def certificate() -> TestCertificate:
    return test_certificate("*.partner.example")


@pytest.fixture
async def stand_in(certificate: TestCertificate, tmp_path: Path) -> AsyncIterator[TlsReceiver]:
    async with tls_receiver(certificate, tmp_path) as receiver:
        yield receiver


@pytest.fixture
async def local_service() -> AsyncIterator[Canary]:
    async with canary() as listener:
        yield listener


def client(
    resolver: outbound.Resolver,
    certificate: TestCertificate,
    *,
    policy: outbound.DestinationPolicy = WITH_STAND_IN,
    follow_redirects: bool = False,
) -> httpx.AsyncClient:
    return outbound.guarded_client(
        policy,
        timeout=TIMEOUT,
        resolver=resolver,
        verify=certificate.client_context(),
        follow_redirects=follow_redirects,
    )


async def test_a_name_is_resolved_once_and_the_checked_address_is_dialled_with_tls_to_the_name(
    stand_in: TlsReceiver,
    certificate: TestCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = ScriptedResolver({"hooks.partner.example": [[STAND_IN_PUBLIC]]})
    with record_connects(monkeypatch) as wire:
        async with client(resolver, certificate) as http:
            response = await http.post(f"https://hooks.partner.example:{stand_in.port}/in")
    assert response.status_code == 200
    # One lookup, by us; the connection went to the address it gave, not to the name (which
    # the OS resolver does not know at all).
    assert resolver.lookups == ["hooks.partner.example"]
    assert wire.attempts == [(STAND_IN_PUBLIC, stand_in.port)]
    # TLS ran against the name: SNI, and a certificate valid for the name only.
    [request] = stand_in.received
    assert request.server_name == "hooks.partner.example"
    assert request.headers["host"] == f"hooks.partner.example:{stand_in.port}"


async def test_a_pinned_connection_still_refuses_a_certificate_for_another_name(
    stand_in: TlsReceiver, certificate: TestCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = ScriptedResolver({"hooks.elsewhere.example": [[STAND_IN_PUBLIC]]})
    with record_connects(monkeypatch) as wire, pytest.raises(httpx.ConnectError) as failed:
        async with client(resolver, certificate) as http:
            await http.post(f"https://hooks.elsewhere.example:{stand_in.port}/in")
    assert not isinstance(failed.value, outbound.DestinationRefused)
    causes = []
    cause: BaseException | None = failed.value
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, ssl.SSLCertVerificationError) for c in causes), causes
    assert wire.attempts == [(STAND_IN_PUBLIC, stand_in.port)]  # connected, then refused it
    assert stand_in.received == []


@pytest.mark.parametrize(
    "answer",
    [
        ["127.0.0.1"],
        ["::1"],
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["::ffff:127.0.0.1"],
        # One bad address is enough: the good one first, and the connection could still end
        # up at the bad one if the good one did not answer.
        [STAND_IN_PUBLIC, "127.0.0.1"],
    ],
)
async def test_a_name_with_any_address_not_permitted_is_refused_before_connecting(
    answer: list[str],
    local_service: Canary,
    certificate: TestCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = ScriptedResolver({"hooks.partner.example": [answer]})
    with record_connects(monkeypatch) as wire, pytest.raises(outbound.DestinationNotAllowed) as no:
        async with client(resolver, certificate) as http:
            await http.post(f"https://hooks.partner.example:{local_service.port}/in")
    assert wire.attempts == []
    assert local_service.connections == 0
    # The message says nothing of where; the reason (for our logs) does.
    assert str(no.value) == "destination not allowed"
    refused = [str(ipaddress.ip_address(a)) for a in answer if a != STAND_IN_PUBLIC]
    assert no.value.reason == f"hooks.partner.example resolves to {', '.join(refused)}"


async def test_a_name_that_rebinds_is_checked_again_at_its_next_connection(
    stand_in: TlsReceiver,
    local_service: Canary,
    certificate: TestCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver = ScriptedResolver({"hooks.partner.example": [[STAND_IN_PUBLIC], ["127.0.0.1"]]})
    with record_connects(monkeypatch) as wire:
        async with client(resolver, certificate) as http:
            first = await http.post(f"https://hooks.partner.example:{stand_in.port}/in")
            # The receiver closed that connection: the next request needs a new one.
            with pytest.raises(outbound.DestinationNotAllowed):
                await http.post(f"https://hooks.partner.example:{stand_in.port}/in")
    assert first.status_code == 200
    assert resolver.lookups == ["hooks.partner.example"] * 2
    assert wire.attempts == [(STAND_IN_PUBLIC, stand_in.port)]
    assert local_service.connections == 0


async def test_a_followed_redirect_to_a_local_address_is_refused_at_its_connection(
    stand_in: TlsReceiver,
    local_service: Canary,
    certificate: TestCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Webhooks follow no redirect; a client that does (a feed, later) is still guarded on
    every hop, because every hop's connection is opened by the same transport."""
    stand_in.status, stand_in.location = 307, f"http://127.0.0.1:{local_service.port}/admin"
    resolver = ScriptedResolver({"hooks.partner.example": [[STAND_IN_PUBLIC]]})
    with record_connects(monkeypatch) as wire, pytest.raises(outbound.DestinationNotAllowed):
        async with client(resolver, certificate, follow_redirects=True) as http:
            await http.post(f"https://hooks.partner.example:{stand_in.port}/in")
    assert len(stand_in.received) == 1
    assert wire.attempts == [(STAND_IN_PUBLIC, stand_in.port)]
    assert local_service.connections == 0


async def test_a_name_that_does_not_resolve_is_refused_with_the_same_bland_message(
    certificate: TestCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    with record_connects(monkeypatch) as wire, pytest.raises(outbound.DestinationUnresolved) as no:
        async with client(ScriptedResolver({}), certificate) as http:
            await http.post("https://nowhere.partner.example/in")
    assert str(no.value) == "destination not allowed"
    assert wire.attempts == []


async def test_proxy_settings_in_the_environment_do_not_route_around_the_guard(
    stand_in: TlsReceiver,
    local_service: Canary,
    certificate: TestCertificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy would make the connection for us, to wherever it is told: never used."""
    proxy = f"http://127.0.0.1:{local_service.port}"
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(variable, proxy)
    resolver = ScriptedResolver({"hooks.partner.example": [[STAND_IN_PUBLIC]]})
    with record_connects(monkeypatch) as wire:
        async with client(resolver, certificate) as http:
            response = await http.post(f"https://hooks.partner.example:{stand_in.port}/in")
    assert response.status_code == 200
    assert wire.attempts == [(STAND_IN_PUBLIC, stand_in.port)]
    assert local_service.connections == 0


async def test_literal_addresses_are_judged_without_a_lookup(
    local_service: Canary, certificate: TestCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = ScriptedResolver({})
    with record_connects(monkeypatch) as wire:
        async with client(resolver, certificate, policy=outbound.PUBLIC_ONLY) as http:
            for host in ("127.0.0.1", "[::1]", "[::ffff:7f00:1]"):
                with pytest.raises(outbound.DestinationNotAllowed):
                    await http.get(f"http://{host}:{local_service.port}/")
    assert resolver.lookups == []
    assert wire.attempts == []
    assert local_service.connections == 0
