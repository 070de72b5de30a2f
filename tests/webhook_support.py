"""Shared set-up for webhook tests: a real local receiver, organisations made with the ORM, and
the receiver's side of the signature check written from docs/webhooks.md (not from the code)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.fleet.api_keys import SHOWN_CHARS, key_hash, new_key
from app.fleet.principal import Scope
from app.models import ApiKey, Organisation, OrganisationMember
from app.platform.db import transaction
from app.runtime import Runtime
from providers.simulators.feed_server import serve_in_background


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str


@dataclass
class Receiver:
    """An organisation's endpoint: answers ``failure_status`` to the first ``fail_first``
    requests, then ``success_status``."""

    fail_first: int = 0
    failure_status: int = 500
    failure_body: bytes = b'{"error":"not today"}'
    success_status: int = 200
    delay_seconds: float = 0.0
    redirect_to: str | None = None
    received: list[Received] = field(default_factory=list)
    # Set at the first request: a test waiting on a background runner awaits it.
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(Received(dict(request.headers), body, request.url.path))
        self.arrived.set()
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if request.url.path != "/hook":
            return Response(b"wrong door", status_code=200)
        if self.redirect_to is not None:
            return Response(status_code=302, headers={"Location": self.redirect_to})
        if len(self.received) <= self.fail_first:
            return Response(self.failure_body, status_code=self.failure_status)
        return Response(b'{"ok":true}', status_code=self.success_status)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hook", self.handle, methods=["POST"]),
                Route("/elsewhere", self.handle, methods=["POST"]),
            ]
        )


@asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[str]:
    """The receiver served on a free local port: its base URL."""
    async with serve_in_background(receiver.app()) as base_url:
        yield base_url


def closed_port_url() -> str:
    """A local URL where nothing listens: the port was bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def verify_signature(secret: str, header: str, body: bytes, now: datetime) -> bool:
    """The algorithm of docs/webhooks.md: split the header on commas into key=value, take ``t``
    and every ``v1``, compute HMAC-SHA256 keyed with the secret over ``t + "." + body`` in
    hex, compare in constant time, and refuse a timestamp more than 5 minutes from now."""
    parts = [p.split("=", 1) for p in header.split(",")]
    timestamps = [v for k, v in parts if k == "t"]
    signatures = [v for k, v in parts if k == "v1"]
    if len(timestamps) != 1 or not signatures:
        return False
    t = timestamps[0]
    if abs(now.timestamp() - int(t)) > 300:
        return False
    expected = hmac.new(secret.encode("utf-8"), t.encode() + b"." + body, hashlib.sha256)
    return any(hmac.compare_digest(expected.hexdigest(), s) for s in signatures)


async def organisation(runtime: Runtime, name: str = "Acme") -> uuid.UUID:
    async with transaction(runtime.sessions) as session:
        org = Organisation(name=name, timezone="Europe/Oslo")
        session.add(org)
        await session.flush()
        return org.id


async def add_member(runtime: Runtime, org_id: uuid.UUID, user_id: str, role: str) -> None:
    async with transaction(runtime.sessions) as session:
        session.add(
            OrganisationMember(organisation_id=org_id, user_id=uuid.UUID(user_id), role=role)
        )


async def api_key(runtime: Runtime, org_id: uuid.UUID, scopes: list[Scope]) -> str:
    token = new_key(live=False)
    async with transaction(runtime.sessions) as session:
        session.add(
            ApiKey(
                organisation_id=org_id,
                name="integration",
                prefix=token[:SHOWN_CHARS],
                key_hash=key_hash(token),
                scopes=[s.value for s in scopes],
            )
        )
    return token
