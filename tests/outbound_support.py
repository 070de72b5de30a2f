"""Test stand-ins for outbound requests to addresses a tenant chose (app/platform/outbound.py):

- :func:`canary`: a real TCP listener on this machine (127.0.0.1 and ::1, one port) that counts
  every connection it is offered, so a test can say "nothing reached a local service";
- :func:`record_connects`: every TCP connection the process tries to open through anyio (which
  httpx uses), whatever the address, so a test can say "nothing was even attempted" for
  addresses no local listener could stand in for (10.0.0.1, 169.254.169.254, fd00::1, …);
- :class:`ScriptedResolver`: DNS answers the test decides, per name and per lookup;
- :func:`tls_receiver`: an HTTPS endpoint with its own certificate for a host *name*, served on
  a loopback address the test treats as the stand-in for a public one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.platform.outbound import Resolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# The stand-in for "somewhere on the public internet": a loopback address the tests' policies
# allow explicitly, never 127.0.0.1 (where the canary listens).
STAND_IN_PUBLIC = "127.0.0.2"

# --- the canary ------------------------------------------------------------------------------


@dataclass
class Canary:
    """A listener on this machine's loopback addresses: ``connections`` counts every TCP
    connection accepted, on 127.0.0.1 or ::1 (same ``port``)."""

    port: int
    connections: int = 0


@asynccontextmanager
async def canary() -> AsyncIterator[Canary]:
    found: Canary | None = None

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert found is not None
        found.connections += 1
        writer.close()

    # One port on both loopback addresses, so every spelling of "this machine" in the table
    # (127.1, 0, [::1], [::ffff:7f00:1], localhost, …) knocks at the same door.
    for _ in range(50):
        v4 = await asyncio.start_server(accepted, "127.0.0.1", 0)
        port = v4.sockets[0].getsockname()[1]
        try:
            v6 = await asyncio.start_server(accepted, "::1", port)
        except OSError:  # that port is taken on ::1: try another
            v4.close()
            await v4.wait_closed()
            continue
        break
    else:
        raise RuntimeError("no port free on both 127.0.0.1 and ::1")
    found = Canary(port)
    try:
        yield found
    finally:
        for server in (v4, v6):
            server.close()
            await server.wait_closed()


# --- every connect attempted -----------------------------------------------------------------


@dataclass
class ConnectLog:
    """(host, port) of every TCP connection opened through anyio, in order."""

    attempts: list[tuple[str, int]] = field(default_factory=list)


@contextmanager
def record_connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectLog]:
    """httpx (through httpcore's anyio backend) opens every TCP connection with
    ``anyio.connect_tcp``: wrap it, so a test sees what would have been dialled, even to an
    address no local listener could catch."""
    log = ConnectLog()
    real = anyio.connect_tcp

    async def recording(remote_host: Any, remote_port: int, **options: Any) -> Any:
        log.attempts.append((str(remote_host), int(remote_port)))
        return await real(remote_host, remote_port, **options)

    monkeypatch.setattr(anyio, "connect_tcp", recording)
    yield log


# --- DNS the test decides --------------------------------------------------------------------


@dataclass
class ScriptedResolver:
    """Answers lookups of the names in ``answers``: a name's list of answers is used one lookup
    after the other, the last one for every later lookup (so ``[[public], [loopback]]`` is a
    name that rebinds after its first lookup); a name listed with no answers does not exist.
    Names not listed go to ``fallback`` (the system resolver, say), or do not exist either."""

    answers: dict[str, list[list[str]]]
    fallback: Resolver | None = None
    lookups: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> Sequence[Address]:
        self.lookups.append(host)
        if host not in self.answers and self.fallback is not None:
            return await self.fallback(host, port)
        script = self.answers.get(host)
        if not script:
            raise OSError(f"{host}: no such name (in this test's DNS)")
        seen = self.lookups.count(host)
        answer = script[min(seen, len(script)) - 1]
        return [ipaddress.ip_address(a) for a in answer]


# --- an HTTPS endpoint with a real certificate -----------------------------------------------


@dataclass(frozen=True)
class TestCertificate:
    """A self-signed certificate for ``names``: the server's chain and key, and a client
    context that trusts it (and verifies host names, as the default context does)."""

    names: tuple[str, ...]
    cert_pem: bytes
    key_pem: bytes

    def server_context(self, tmp_dir: Any) -> ssl.SSLContext:
        cert_file = tmp_dir / "cert.pem"
        key_file = tmp_dir / "key.pem"
        cert_file.write_bytes(self.cert_pem)
        key_file.write_bytes(self.key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.cert_pem.decode())
        assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
        return context


def test_certificate(*names: str) -> TestCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(key, hashes.SHA256())
    )
    return TestCertificate(
        names,
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


# pytest must not collect the factory above as a test.
test_certificate.__test__ = False  # type: ignore[attr-defined]
TestCertificate.__test__ = False  # type: ignore[attr-defined]


@dataclass
class ReceivedRequest:
    server_name: str | None  # the TLS SNI the client sent
    request_line: str
    headers: dict[str, str]
    body: bytes


@dataclass
class TlsReceiver:
    """HTTPS on ``address``:``port``; answers every request with ``status`` (and ``location``
    as its Location header, for a redirect), then closes the connection."""

    address: str
    port: int = 0
    status: int = 200
    location: str | None = None
    received: list[ReceivedRequest] = field(default_factory=list)


@asynccontextmanager
async def tls_receiver(
    certificate: TestCertificate, tmp_dir: Any, address: str = STAND_IN_PUBLIC
) -> AsyncIterator[TlsReceiver]:
    receiver = TlsReceiver(address)
    context = certificate.server_context(tmp_dir)
    server_names: dict[int, str | None] = {}

    def remember_sni(sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        server_names[id(sock)] = name

    context.sni_callback = remember_sni

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines if ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            ssl_object = writer.get_extra_info("ssl_object")
            receiver.received.append(
                ReceivedRequest(server_names.get(id(ssl_object)), request_line, headers, body)
            )
            extra = f"Location: {receiver.location}\r\n" if receiver.location else ""
            writer.write(
                f"HTTP/1.1 {receiver.status} X\r\n{extra}Content-Length: 2\r\n"
                "Connection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # a client that gave up (or refused our certificate)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, address, 0, ssl=context)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()
