"""Webhook deliveries through the task queue, as a multi-process deployment runs them:
`mobility scheduler` queues a round every few seconds and a `mobility worker` process sends it.
An event written to the outbox (as a booking's transaction writes it) reaches a real local
receiver, signed, once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from app.fleet.outbox import EventType, emit
from app.fleet.principal import OrgActor, Role
from app.fleet.webhooks import SIGNATURE_HEADER, register_endpoint
from app.platform.db import transaction
from app.runtime import Runtime
from tests.processes import mobility_process, wait_for
from tests.webhook_support import Receiver, organisation, running, verify_signature


async def test_a_worker_delivers_what_the_scheduler_queues(
    runtime: Runtime, tmp_path: Path
) -> None:
    receiver = Receiver()
    async with running(receiver) as base_url:
        org_id = await organisation(runtime)
        async with transaction(runtime.sessions) as session:
            _, secret = await register_endpoint(
                session,
                OrgActor(org_id, user_id=uuid.uuid4(), role=Role.OWNER),
                f"{base_url}/hook",
                [EventType.BOOKING_CONFIRMED],
                settings=runtime.settings,
            )
            await emit(
                session,
                organisation_id=org_id,
                event_type=EventType.BOOKING_CONFIRMED,
                payload={"booking_id": "b-1"},
            )
        logs = [tmp_path / "scheduler.log", tmp_path / "worker.log"]
        with (
            mobility_process(["scheduler"], runtime.settings, logs[0]),
            mobility_process(["worker"], runtime.settings, logs[1]),
        ):

            async def delivered() -> bool:
                async with runtime.sessions() as session:
                    status: str | None = await session.scalar(
                        text("SELECT status FROM webhook_deliveries")
                    )
                return status == "DELIVERED"

            await wait_for(delivered, 60, "the delivery by a worker", logs)
            await asyncio.sleep(2)  # more rounds come and find nothing to send
        assert len(receiver.received) == 1
        [got] = receiver.received
        assert b'"b-1"' in got.body
        assert verify_signature(
            secret, got.headers[SIGNATURE_HEADER.lower()], got.body, datetime.now(UTC)
        )
