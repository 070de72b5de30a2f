"""The search service's cached provider sets (which providers are servable, which private): read
once per expiry however many callers ask at once, and read again when a caller needs it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.runtime import Runtime
from app.search import repository


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the reads of the enabled providers, each slowed so that callers overlap."""
    counted: list[int] = []
    real = repository.enabled_providers

    async def counting(session: Any) -> Any:
        counted.append(1)
        await asyncio.sleep(0.05)
        return await real(session)

    monkeypatch.setattr(repository, "enabled_providers", counting)
    return counted


async def test_callers_that_find_the_sets_expired_together_share_one_read(
    runtime: Runtime, reads: list[int]
) -> None:
    search = runtime.search
    search.invalidate()
    # A delta batch wakes every live subscriber of a process at once.
    answers = await asyncio.gather(*(search.servable_providers() for _ in range(50)))
    assert len(reads) == 1
    assert len(set(answers)) == 1
    await search.servable_providers()
    assert len(reads) == 1  # still fresh


async def test_a_forced_refresh_reads_again_even_behind_a_read_in_flight(
    runtime: Runtime, reads: list[int]
) -> None:
    search = runtime.search
    search.invalidate()
    first = asyncio.create_task(search.servable_providers())
    await asyncio.sleep(0.01)  # that read is under way
    # A provider unknown to the sets: the caller must see the providers as of now, not as of
    # the read that began before it asked.
    await search.servable_providers(including={"new-provider"})
    await first
    assert len(reads) == 2
