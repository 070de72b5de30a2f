"""Invitation emails, received by a real SMTP server (aiosmtpd) on 127.0.0.1: the invitee
gets the link with the token and joins with it; a mail server that is down or missing never
costs the invitation, and the admin is told why the email did not go."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from pydantic import ValidationError
from sqlalchemy import text

from app.fleet.organisations import MAX_INVITATIONS_PER_DAY
from app.main import create_app
from app.platform.db import transaction
from app.platform.smtp_url import smtp_target
from app.runtime import Runtime
from tests.booking_support import gql, sign_up
from tests.conftest import make_settings
from tests.graphql.test_organisations_api import ACCEPT, CREATE, _email, _org

INVITE = """mutation I($org: ID!, $email: String!, $role: OrganisationRole!) {
  inviteMember(organisationId: $org, email: $email, role: $role) {
    token emailSent emailError invitation { id email expiresAt } } }"""


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(([str(r) for r in envelope.rcpt_tos], parsed))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@asynccontextmanager
async def api_with(runtime: Runtime, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app as deployed with these mail settings (the runtime's too: requests on the fast
    path, and the services, take theirs from it)."""
    configured = runtime.with_settings(runtime.settings.model_copy(update=settings))
    app = create_app(configured.settings)
    app.state.runtime = configured
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_the_invitee_gets_the_link_by_email_and_joins_with_it(runtime: Runtime) -> None:
    with smtp_server() as (inbox, port):
        async with api_with(
            runtime,
            smtp_url=f"smtp://127.0.0.1:{port}",
            mail_from="Acme travel <travel@acme.example>",
            invitation_link="https://app.example/join?token={token}",
        ) as api:
            owner, _ = await sign_up(api)
            org = await _org(api, owner, name="Acme Logistics")
            invitee, _ = await sign_up(api)
            address = await _email(api, invitee)
            body = await gql(api, INVITE, {"org": org, "email": address, "role": "RIDER"}, owner)
            result = body["data"]["inviteMember"]
            assert (result["emailSent"], result["emailError"]) == (True, None), body

            [(recipients, message)] = inbox.messages
            assert recipients == [address]
            assert message["To"] == address
            assert message["From"] == "Acme travel <travel@acme.example>"
            assert "Acme Logistics" in message["Subject"]
            text = message.get_content()
            links = re.findall(r"https://app\.example/join\?token=(\S+)", text)
            assert links == [result["token"]]

            # The token from the email is what lets the invitee in.
            accepted = await gql(api, ACCEPT, {"token": links[0]}, invitee)
            assert accepted["data"]["acceptInvitation"]["myRole"] == "RIDER", accepted


async def test_without_a_link_the_email_carries_the_code(runtime: Runtime) -> None:
    with smtp_server() as (inbox, port):
        async with api_with(runtime, smtp_url=f"smtp://127.0.0.1:{port}") as api:
            owner, _ = await sign_up(api)
            org = await _org(api, owner)
            body = await gql(
                api, INVITE, {"org": org, "email": "new.hire@example.org", "role": "BOOKER"}, owner
            )
            result = body["data"]["inviteMember"]
            assert result["emailSent"] is True
            [(_, message)] = inbox.messages
            assert result["token"] in message.get_content()


async def test_a_mail_server_down_or_missing_costs_nothing_but_the_email(
    runtime: Runtime,
) -> None:
    closed = _free_port()  # nothing listens there
    for settings, reason in (
        ({"smtp_url": f"smtp://127.0.0.1:{closed}"}, "the mail server did not take it"),
        ({"smtp_url": None}, "no mail server is configured"),
        ({"smtp_url": "http://mail.example"}, "must look like smtp://"),
    ):
        async with api_with(runtime, **settings) as api:
            owner, _ = await sign_up(api)
            org = await _org(api, owner)
            invitee, _ = await sign_up(api)
            address = await _email(api, invitee)
            body = await gql(api, INVITE, {"org": org, "email": address, "role": "RIDER"}, owner)
            result = body["data"]["inviteMember"]
            assert result["emailSent"] is False, body
            assert reason in result["emailError"]
            assert result["token"] not in result["emailError"]
            # The invitation stands: the admin passes the token on, and it works.
            accepted = await gql(api, ACCEPT, {"token": result["token"]}, invitee)
            assert accepted["data"]["acceptInvitation"]["myRole"] == "RIDER", accepted


async def test_credentials_never_go_to_a_server_without_starttls(runtime: Runtime) -> None:
    """With a user and password, smtp:// requires STARTTLS: a server that does not offer it
    (or someone between us who strips the offer) gets no AUTH and no message."""
    attempts: list[tuple[str, Any]] = []

    def record(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any):  # type: ignore[no-untyped-def]
        attempts.append((mechanism, data))
        return AuthResult(success=True)

    inbox = Inbox()
    port = _free_port()
    # Offers AUTH over plain TCP and no STARTTLS: what a downgrade looks like to us.
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=record, auth_require_tls=False
    )
    controller.start()
    try:
        async with api_with(runtime, smtp_url=f"smtp://mailer:s3cret@127.0.0.1:{port}") as api:
            owner, _ = await sign_up(api)
            org = await _org(api, owner)
            body = await gql(
                api, INVITE, {"org": org, "email": "new.hire@example.org", "role": "RIDER"}, owner
            )
            result = body["data"]["inviteMember"]
            assert result["emailSent"] is False, body
            assert "s3cret" not in result["emailError"]
        # The same server takes the mail from a relay configured without credentials.
        async with api_with(runtime, smtp_url=f"smtp://127.0.0.1:{port}") as api:
            owner, _ = await sign_up(api)
            org = await _org(api, owner)
            body = await gql(
                api, INVITE, {"org": org, "email": "new.hire@example.org", "role": "RIDER"}, owner
            )
            assert body["data"]["inviteMember"]["emailSent"] is True, body
    finally:
        controller.stop()
    assert attempts == []
    assert [recipients for recipients, _ in inbox.messages] == [["new.hire@example.org"]]


def test_a_malformed_smtp_url_never_shows_its_password() -> None:
    """A password with an unencoded '/' makes URL parsers quote it as a 'port': neither the
    start-up error nor an admin's emailError may carry it."""
    url = "smtp://mailer:hunter2/x@smtp.example"
    with pytest.raises(ValidationError) as refused:
        make_settings(smtp_url=url)
    assert "hunter2" not in str(refused.value)
    assert "percent-encode" in str(refused.value)
    with pytest.raises(ValueError) as direct:
        smtp_target(url)
    assert "hunter2" not in str(direct.value)
    # Encoded, the same password is what we log in with.
    target = smtp_target("smtp://mailer:hunter2%2Fx@smtp.example")
    assert (target.username, target.password, target.port) == ("mailer", "hunter2/x", 587)


async def test_an_address_list_or_a_name_with_line_breaks_is_refused(runtime: Runtime) -> None:
    with smtp_server() as (inbox, port):
        async with api_with(runtime, smtp_url=f"smtp://127.0.0.1:{port}") as api:
            owner, _ = await sign_up(api)
            refused_name = await gql(
                api,
                CREATE,
                {"name": "Acme\r\nBcc: victim@evil.example", "tz": "Europe/Berlin"},
                owner,
            )
            assert refused_name["errors"][0]["extensions"]["code"] == "INVALID_NAME"
            org = await _org(api, owner)
            for address in (
                "x@y.example,postmaster",
                "Someone <x@y.example>",
                "x@y.example\r\nBcc: victim@evil.example",
                '"x"@y.example',
            ):
                body = await gql(
                    api, INVITE, {"org": org, "email": address, "role": "RIDER"}, owner
                )
                assert body["errors"][0]["extensions"]["code"] == "INVALID_EMAIL", address
    assert inbox.messages == []


async def test_an_organisation_sends_a_bounded_number_of_invitations_a_day(
    runtime: Runtime,
) -> None:
    async with api_with(runtime, smtp_url=None) as api:
        owner, _ = await sign_up(api)
        org = await _org(api, owner)
        owner_id = (await gql(api, "query { me { id } }", {}, owner))["data"]["me"]["id"]

        async def sent(count: int, hours_ago: float) -> None:
            async with transaction(runtime.sessions) as session:
                await session.execute(
                    text(
                        "INSERT INTO invitations (id, organisation_id, email, role, token_hash, "
                        "invited_by, created_at, expires_at) SELECT gen_random_uuid(), :org, "
                        "'p' || g || '@example.org', 'RIDER', "
                        "decode(md5(random()::text || g), 'hex'), :by, "
                        "now() - make_interval(secs => :ago), now() + interval '1 day' "
                        "FROM generate_series(1, :n) g"
                    ),
                    {"org": org, "by": owner_id, "ago": hours_ago * 3600, "n": count},
                )

        async def invite() -> dict[str, Any]:
            variables = {"org": org, "email": "one.more@example.org", "role": "RIDER"}
            return await gql(api, INVITE, variables, owner)

        # Yesterday's invitations do not count; today's do, up to the bound.
        await sent(MAX_INVITATIONS_PER_DAY, hours_ago=25)
        await sent(MAX_INVITATIONS_PER_DAY - 1, hours_ago=1)
        assert "errors" not in await invite()
        refused = await invite()
        assert refused["errors"][0]["extensions"]["code"] == "TOO_MANY_INVITATIONS", refused
