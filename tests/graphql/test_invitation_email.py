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
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from app.main import create_app
from app.runtime import Runtime
from tests.booking_support import gql, sign_up
from tests.graphql.test_organisations_api import ACCEPT, _email, _org

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
    """The app as deployed with these mail settings (the runtime's settings too: requests on
    the fast path take theirs from it)."""
    original = runtime.settings
    runtime.settings = original.model_copy(update=settings)
    try:
        app = create_app(runtime.settings)
        app.state.runtime = runtime
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client
    finally:
        runtime.settings = original


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
