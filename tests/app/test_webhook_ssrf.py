"""The SSRF table: in production, no webhook URL an organisation can write reaches anything but
a public address, whether refused when registered or where the delivery connects, and the
delivery log says no more than "destination not allowed" about it.

Every row is played against a real listener on this machine (the canary, on 127.0.0.1 and ::1)
and a record of every TCP connection attempted, so "refused" means nothing was dialled, not
merely that an error came back. The positive control delivers, in production mode, through the
same client to a stand-in for a public host (a loopback address this test's policy allows, with
a TLS certificate for the host name), so the refusals are not the client failing at everything.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from taskiq import InMemoryBroker

from app.fleet import webhooks
from app.fleet.outbox import EventType, emit
from app.fleet.principal import OrgActor, Role
from app.fleet.tasks import register_webhook_tasks, webhook_kicker
from app.models import WebhookDelivery, WebhookEndpoint
from app.platform import outbound
from app.platform.db import transaction
from app.platform.errors import InvalidInput
from app.platform.settings import Settings
from app.runtime import Runtime
from tests.conftest import make_settings
from tests.outbound_support import (
    STAND_IN_PUBLIC,
    Canary,
    ConnectLog,
    ScriptedResolver,
    TestCertificate,
    TlsReceiver,
    canary,
    record_connects,
    test_certificate,
    tls_receiver,
)
from tests.webhook_support import organisation, verify_signature

T0 = datetime(2031, 3, 14, 9, 0, tzinfo=UTC)

# Every spelling of an address that is not public, as an organisation could type it; {port} is
# the canary's, so a spelling of this machine that got through would knock on it.
NOT_PUBLIC_URLS = [
    "https://2130706433:{port}/hook",  # 127.0.0.1 as one decimal number
    "https://0x7f000001:{port}/hook",  # ... in hex
    "https://017700000001:{port}/hook",  # ... in octal
    "https://127.1:{port}/hook",  # ... shortened
    "https://0x7f.1:{port}/hook",  # ... mixed
    "https://0177.0.0.1:{port}/hook",  # ... octal parts
    "https://127.0.0.1:{port}/hook",
    "https://0:{port}/hook",  # 0.0.0.0, which Linux delivers to this machine
    "https://0.0.0.0:{port}/hook",
    "https://localhost:{port}/hook",
    "https://localhost.:{port}/hook",
    "https://LocalHost:{port}/hook",
    "https://api.localhost:{port}/hook",
    "https://[::1]:{port}/hook",
    "https://[::ffff:7f00:1]:{port}/hook",  # IPv4-mapped 127.0.0.1
    "https://[::ffff:127.0.0.1]:{port}/hook",
    "https://[0:0:0:0:0:ffff:127.0.0.1]:{port}/hook",
    "https://[fd00::1]:{port}/hook",  # unique local
    "https://[fe80::1]:{port}/hook",  # link-local
    "https://[fe80::1%25lo]:{port}/hook",  # ... with a zone id
    "https://10.1:{port}/hook",  # 10.0.0.1, shortened
    "https://10.0.0.1:{port}/hook",
    "https://172.16.0.1:{port}/hook",
    "https://192.168.0.1:{port}/hook",
    "https://100.64.0.1:{port}/hook",  # carrier-grade NAT
    "https://169.254.169.254:{port}/hook",  # cloud metadata
    "https://169.254.169.254.:{port}/hook",  # ... with a trailing dot
    "https://224.0.0.1:{port}/hook",  # multicast
    "https://metadata:{port}/hook",  # one label: the search domains'
    "https://metadata.google.internal:{port}/hook",
    "https://good.example@127.0.0.1:{port}/hook",  # userinfo: the host is 127.0.0.1
    "https://%31%32%37.0.0.1:{port}/hook",  # percent-encoded
]

# Names that look public and are registered as such, but resolve (in this test's DNS) to what
# is not; and the two ways DNS is used to get past a check.
NAMES = {
    "loopback.partner.example": [["127.0.0.1"]],
    "loopback6.partner.example": [["::1"]],
    "mapped.partner.example": [["::ffff:127.0.0.1"]],
    "private.partner.example": [["10.0.0.5"]],
    "metadata.partner.example": [["169.254.169.254"]],
    "cgnat.partner.example": [["100.64.0.1"]],
    # One public and one local address: refused, not "try the public one".
    "mixed.partner.example": [[STAND_IN_PUBLIC, "127.0.0.1"]],
    # Public at its first lookup, this machine at every later one (DNS rebinding).
    "rebinding.partner.example": [[STAND_IN_PUBLIC], ["127.0.0.1"]],
    "hooks.partner.example": [[STAND_IN_PUBLIC]],
    "bounce.partner.example": [[STAND_IN_PUBLIC]],
    "unknown.partner.example": [],
}
RESOLVING_TO_NOT_PUBLIC = [
    "loopback.partner.example",
    "loopback6.partner.example",
    "mapped.partner.example",
    "private.partner.example",
    "metadata.partner.example",
    "cgnat.partner.example",
    "mixed.partner.example",
    "unknown.partner.example",  # no answer: refused alike (internal names are not probed)
]


@dataclass
class Scene:
    """Production settings, the canary, the stand-in public endpoint and the wire record."""

    runtime: Runtime
    production: Settings
    org: uuid.UUID
    canary: Canary
    stand_in: TlsReceiver
    certificate: TestCertificate
    resolver: ScriptedResolver
    wire: ConnectLog

    def client(self, *, stand_in_is_public: bool = False) -> httpx.AsyncClient:
        """The production delivery client (webhooks.webhook_http_client), resolving through
        this test's DNS (names it does not script go to the system resolver) and trusting the
        stand-in's certificate. Only when asked is the stand-in's address public too;
        otherwise the policy is production's own."""
        policy = webhooks.destination_policy(self.production)
        if stand_in_is_public:
            policy = outbound.DestinationPolicy(
                also_allowed=(ipaddress.ip_network(f"{STAND_IN_PUBLIC}/32"),)
            )
        return webhooks.webhook_http_client(
            self.production,
            policy=policy,
            resolver=self.resolver,
            verify=self.certificate.client_context(),
        )

    async def register(self, url: str) -> uuid.UUID:
        async with transaction(self.runtime.sessions) as session:
            endpoint, _ = await webhooks.register_endpoint(
                session,
                OrgActor(self.org, user_id=uuid.uuid4(), role=Role.ADMIN),
                url,
                [EventType.BOOKING_CONFIRMED],
                settings=self.production,
            )
            return endpoint.id

    async def store_unchecked(self, url: str) -> uuid.UUID:
        """An endpoint row with ``url`` as is: what a registration before this check stored,
        or a check that missed something; the connection must refuse it on its own."""
        async with transaction(self.runtime.sessions) as session:
            endpoint = WebhookEndpoint(
                organisation_id=self.org,
                url=url,
                secret="whsec_unchecked",
                events=[EventType.BOOKING_CONFIRMED.value],
                enabled=True,
            )
            session.add(endpoint)
            await session.flush()
            return endpoint.id

    async def deliver_one_event(
        self, http: httpx.AsyncClient, now: datetime = T0
    ) -> WebhookDelivery:
        async with transaction(self.runtime.sessions) as session:
            await emit(
                session,
                organisation_id=self.org,
                event_type=EventType.BOOKING_CONFIRMED,
                payload={"booking_id": "b-1"},
            )
        await webhooks.dispatch_outbox(self.runtime.sessions, now)
        [outcome] = await webhooks.deliver_due(self.runtime.sessions, http, now)
        async with self.runtime.sessions() as session:
            delivery = await session.get(WebhookDelivery, outcome.delivery_id)
            assert delivery is not None
            return delivery


@pytest.fixture
async def scene(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Scene]:
    certificate = test_certificate("*.partner.example")
    resolver = ScriptedResolver(NAMES, fallback=outbound.system_resolver)
    async with canary() as listener, tls_receiver(certificate, tmp_path) as stand_in:
        with record_connects(monkeypatch) as wire:
            yield Scene(
                runtime,
                make_settings(environment="production"),
                await organisation(runtime),
                listener,
                stand_in,
                certificate,
                resolver,
                wire,
            )


def assert_refused_generically(
    delivery: WebhookDelivery, error: str = webhooks.DESTINATION_REFUSED
) -> None:
    assert delivery.status == "PENDING"  # a failed attempt, retried on schedule
    assert delivery.attempts == 1
    assert delivery.last_error == error
    assert delivery.last_status_code is None
    assert delivery.last_response is None


@pytest.mark.parametrize("template", NOT_PUBLIC_URLS)
async def test_a_url_that_is_not_public_is_refused_at_registration(
    scene: Scene, template: str
) -> None:
    url = template.format(port=scene.canary.port)
    with pytest.raises(InvalidInput) as refused:
        await scene.register(url)
    assert refused.value.code == "INVALID_WEBHOOK_URL"
    async with scene.runtime.sessions() as session:
        assert (await session.execute(select(WebhookEndpoint))).first() is None


@pytest.mark.parametrize("template", NOT_PUBLIC_URLS)
async def test_a_url_that_is_not_public_is_refused_at_connect_even_if_stored(
    scene: Scene, template: str
) -> None:
    url = template.format(port=scene.canary.port)
    await scene.store_unchecked(url)
    async with scene.client() as http:
        delivery = await scene.deliver_one_event(http)
    try:
        httpx.URL(url)
    except httpx.InvalidURL:  # not even a URL to httpx (0177.0.0.1): nothing to connect to
        assert_refused_generically(delivery, webhooks.UNUSABLE_URL)
    else:
        assert_refused_generically(delivery)
    assert scene.wire.attempts == []
    assert scene.canary.connections == 0


@pytest.mark.parametrize("name", RESOLVING_TO_NOT_PUBLIC)
async def test_a_name_resolving_to_what_is_not_public_is_refused_at_connect(
    scene: Scene, name: str
) -> None:
    # The name is fine to register: where it leads is decided at each connection.
    await scene.register(f"https://{name}:{scene.canary.port}/hook")
    async with scene.client(stand_in_is_public=True) as http:
        delivery = await scene.deliver_one_event(http)
    assert_refused_generically(delivery)
    assert scene.resolver.lookups == [name]
    assert scene.wire.attempts == []
    assert scene.canary.connections == 0


async def test_a_redirect_from_a_public_host_to_a_local_one_is_not_followed(
    scene: Scene,
) -> None:
    scene.stand_in.status = 302
    scene.stand_in.location = f"http://127.0.0.1:{scene.canary.port}/hook"
    await scene.register(f"https://bounce.partner.example:{scene.stand_in.port}/hook")
    async with scene.client(stand_in_is_public=True) as http:
        delivery = await scene.deliver_one_event(http)
    assert (delivery.status, delivery.last_status_code) == ("PENDING", 302)
    # The Location header is the endpoint's own answer (a public host's), shown as it came.
    assert delivery.last_error == f"redirect to {scene.stand_in.location} not followed"
    assert len(scene.stand_in.received) == 1
    assert scene.wire.attempts == [(STAND_IN_PUBLIC, scene.stand_in.port)]
    assert scene.canary.connections == 0


async def test_a_name_that_rebinds_to_this_machine_after_a_delivery_is_refused_at_the_next(
    scene: Scene,
) -> None:
    await scene.register(f"https://rebinding.partner.example:{scene.stand_in.port}/hook")
    async with scene.client(stand_in_is_public=True) as http:
        first = await scene.deliver_one_event(http)
        assert (first.status, first.last_error) == ("DELIVERED", None)
        # The stand-in closes each connection: the next delivery connects (and looks up) anew.
        second = await scene.deliver_one_event(http, T0 + timedelta(minutes=1))
    assert_refused_generically(second)
    # One lookup per connection, and the connection went to the address that was checked:
    # there is no second lookup between check and connect for DNS to answer differently.
    assert scene.resolver.lookups == ["rebinding.partner.example"] * 2
    assert scene.wire.attempts == [(STAND_IN_PUBLIC, scene.stand_in.port)]
    assert scene.canary.connections == 0


async def test_positive_control_a_public_endpoint_is_delivered_to_in_production(
    scene: Scene,
) -> None:
    async with transaction(scene.runtime.sessions) as session:
        endpoint, secret = await webhooks.register_endpoint(
            session,
            OrgActor(scene.org, user_id=uuid.uuid4(), role=Role.ADMIN),
            f"https://Hooks.Partner.Example.:{scene.stand_in.port}/hook",
            [EventType.BOOKING_CONFIRMED],
            settings=scene.production,
        )
    assert endpoint.url == f"https://hooks.partner.example:{scene.stand_in.port}/hook"
    async with scene.client(stand_in_is_public=True) as http:
        delivery = await scene.deliver_one_event(http)
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == (
        "DELIVERED",
        200,
        None,
    )
    [request] = scene.stand_in.received
    assert request.request_line == "POST /hook HTTP/1.1"
    assert request.server_name == "hooks.partner.example"  # TLS to the name ...
    assert scene.wire.attempts == [(STAND_IN_PUBLIC, scene.stand_in.port)]  # ... at the address
    assert verify_signature(secret, request.headers["mobility-signature"], request.body, T0)
    assert scene.canary.connections == 0


async def test_a_certificate_for_another_name_fails_with_a_useful_error_naming_no_address(
    scene: Scene,
) -> None:
    scene.resolver.answers["hooks.elsewhere.example"] = [[STAND_IN_PUBLIC]]
    await scene.register(f"https://hooks.elsewhere.example:{scene.stand_in.port}/hook")
    async with scene.client(stand_in_is_public=True) as http:
        delivery = await scene.deliver_one_event(http)
    assert delivery.last_error == (
        "ConnectError: TLS certificate not accepted: Hostname mismatch, certificate is not "
        "valid for 'hooks.elsewhere.example'."
    )
    assert scene.stand_in.received == []


async def test_the_worker_delivers_through_the_guarded_client(scene: Scene) -> None:
    """``mobility worker``'s round (app/fleet/tasks.py) with production settings: its client
    is the guarded one, so a stored local URL is refused there too."""
    await scene.store_unchecked(f"http://127.0.0.1:{scene.canary.port}/hook")
    async with transaction(scene.runtime.sessions) as session:
        await emit(
            session,
            organisation_id=scene.org,
            event_type=EventType.BOOKING_CONFIRMED,
            payload={"booking_id": "b-1"},
        )
    broker = InMemoryBroker()
    register_webhook_tasks(broker, scene.production)
    await broker.startup()
    try:
        sent = await webhook_kicker(broker)()
        result = await sent.wait_result(timeout=10)  # type: ignore[attr-defined]
    finally:
        await broker.shutdown()
    assert not result.is_err, result.error
    assert result.return_value == "1 events dispatched, 1 attempts"
    async with scene.runtime.sessions() as session:
        [delivery] = (await session.execute(select(WebhookDelivery))).scalars()
    assert_refused_generically(delivery)
    assert scene.wire.attempts == []
    assert scene.canary.connections == 0
