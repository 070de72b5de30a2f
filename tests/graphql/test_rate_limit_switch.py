"""`MOBILITY_RATE_LIMITS_ENABLED=false` (load tests) lets a rider past the per-rider limit;
on (the default) the limit holds. Burst from app/rate_limit.RIDER_LIMIT."""

from __future__ import annotations

import httpx

from app.main import create_app
from app.rate_limit import RIDER_LIMIT
from app.runtime import Runtime, open_runtime
from tests.booking_support import codes, gql, sign_up
from tests.conftest import make_settings

MINE = "query { myBookings { id } }"


async def _passed(api: httpx.AsyncClient, token: str, tries: int) -> int:
    passed = 0
    for _ in range(tries):
        if codes(await gql(api, MINE, {}, token)) == ["RATE_LIMITED"]:
            break
        passed += 1
    return passed


async def test_the_switch_turns_the_rider_limit_off_and_only_that(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    tries = RIDER_LIMIT.burst + 20  # well past the burst, faster than the refill can cover
    token, _ = await sign_up(api)
    assert await _passed(api, token, tries) < tries
    settings = make_settings(rate_limits_enabled=False)
    async with open_runtime(settings) as own:
        off = create_app(settings)
        off.state.runtime = own
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=off), base_url="http://api"
        ) as unlimited:
            other, _ = await sign_up(unlimited)
            assert await _passed(unlimited, other, tries) == tries
