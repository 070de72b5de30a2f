"""Running the pipeline: the guarded HTTP client deliveries are sent with, one round (the
whole outbox backlog fanned out, then one batch of due deliveries attempted), and the
in-process dispatcher of ``mobility serve`` that runs a round every second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.fleet.webhooks.delivery import (
    ATTEMPT_TIMEOUT_SECONDS,
    DELIVERY_BATCH,
    DeliveryOutcome,
    deliver_due,
)
from app.fleet.webhooks.destinations import destination_policy
from app.fleet.webhooks.fanout import DISPATCH_BATCH, dispatch_outbox
from app.fleet.webhooks.states import DeliveryStatus
from app.platform import outbound
from app.platform.background import in_background
from app.platform.settings import Settings

# The package's one logger, named as before the split (app/fleet/webhooks/delivery.py).
log = logging.getLogger("app.fleet.webhooks")

# The in-process runner's cadence (would be a setting: webhook_interval_seconds).
TICK_SECONDS = 1.0
USER_AGENT = "mobility-aggregator-webhooks/0.1"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def webhook_http_client(
    settings: Settings,
    *,
    policy: outbound.DestinationPolicy | None = None,
    resolver: outbound.Resolver = outbound.system_resolver,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """The client deliveries are sent with: every connection it opens is checked where it is
    made (app/platform/outbound.py), against :func:`destination_policy` unless a test passes its own
    ``policy``, ``resolver`` and trusted certificates (``verify``). Redirects are not followed
    (a signed POST is not re-sent elsewhere; ``delivery._send`` says so once more per request)."""
    return outbound.guarded_client(
        policy if policy is not None else destination_policy(settings),
        timeout=httpx.Timeout(ATTEMPT_TIMEOUT_SECONDS),
        resolver=resolver,
        verify=verify,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


@dataclass(slots=True)
class RoundReport:
    dispatched_events: int = 0
    outcomes: list[DeliveryOutcome] | None = None

    @property
    def attempted(self) -> int:
        return len(self.outcomes or [])


async def run_webhook_round(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, now: datetime
) -> RoundReport:
    """Fan out the whole outbox backlog, then attempt what is due (one batch)."""
    report = RoundReport(outcomes=[])
    while True:
        taken = await dispatch_outbox(sessions, now)
        report.dispatched_events += taken
        if taken < DISPATCH_BATCH:
            break
    report.outcomes = await deliver_due(sessions, http, now)
    return report


@contextlib.asynccontextmanager
async def start_webhook_dispatcher(
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: Settings,
    *,
    clock: Clock = utc_now,
    interval_seconds: float = TICK_SECONDS,
) -> AsyncIterator[None]:
    """Run :func:`run_webhook_round` every ``interval_seconds`` in the background for as long
    as the context is open (``mobility serve``); a full batch goes round again at once.

    On exit the round in flight may finish (up to one attempt's timeout and a little): cut
    short, its requests would be sent again after their lease, which receivers must tolerate
    but should not see on every deploy."""
    del settings  # the knobs are module constants until they earn settings of their own
    stopping = asyncio.Event()

    async def loop() -> None:
        while not stopping.is_set():
            report = RoundReport()
            try:
                report = await run_webhook_round(sessions, http, clock())
                failed = [o for o in report.outcomes or [] if o.status is DeliveryStatus.FAILED]
                if failed:
                    log.warning("webhooks: %d deliveries failed for good", len(failed))
            except Exception:
                log.exception("webhook round failed; trying again next round")
            if report.attempted < DELIVERY_BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), interval_seconds)

    async with in_background(loop(), name="webhook-dispatcher") as task:
        try:
            yield
        finally:
            stopping.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), ATTEMPT_TIMEOUT_SECONDS + 5)
