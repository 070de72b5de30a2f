"""SQL for provider records, their health and their sync runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Provider, SyncRun


async def get(session: AsyncSession, provider_id: str) -> Provider | None:
    return await session.get(Provider, provider_id)


async def list_all(session: AsyncSession, *, enabled_only: bool = False) -> Sequence[Provider]:
    query = select(Provider).order_by(Provider.id)
    if enabled_only:
        query = query.where(Provider.enabled.is_(True))
    return (await session.scalars(query)).all()


async def upsert(
    session: AsyncSession, *, provider_id: str, name: str, adapter: str, config: dict[str, Any]
) -> tuple[Provider, bool]:
    """Create the provider, or update its name/adapter/config. Returns (provider, created)."""
    existing = await session.get(Provider, provider_id)
    if existing is None:
        provider = Provider(id=provider_id, name=name, adapter=adapter, config=config)
        session.add(provider)
        await session.flush()
        return provider, True
    existing.name = name
    existing.adapter = adapter
    existing.config = config
    # New configuration, new baseline: feeds the old configuration had are not expected.
    existing.feed_names = []
    await session.flush()
    return existing, False


async def start_run(session: AsyncSession, provider_id: str, started_at: datetime) -> SyncRun:
    run = SyncRun(provider_id=provider_id, started_at=started_at, status="running")
    session.add(run)
    await session.flush()
    return run


async def record_failure(
    session: AsyncSession, *, provider_id: str, run_id: int, error: str, at: datetime
) -> None:
    await session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id)
        .values(status="failed", error=error, finished_at=at, error_count=1)
    )
    await session.execute(
        update(Provider)
        .where(Provider.id == provider_id)
        .values(
            last_sync_at=at,
            last_error=error,
            stale=True,
            consecutive_failures=Provider.consecutive_failures + 1,
        )
    )


async def record_success(
    session: AsyncSession,
    *,
    provider_id: str,
    run_id: int,
    at: datetime,
    counts: dict[str, Any],
    findings: list[dict[str, Any]],
    error_count: int,
    warning_count: int,
    provider_values: dict[str, Any],
) -> None:
    await session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id)
        .values(
            status="succeeded",
            finished_at=at,
            counts=counts,
            findings=findings,
            error_count=error_count,
            warning_count=warning_count,
        )
    )
    await session.execute(
        update(Provider)
        .where(Provider.id == provider_id)
        .values(
            last_sync_at=at,
            last_success_at=at,
            last_error=None,
            stale=False,
            consecutive_failures=0,
            **provider_values,
        )
    )


async def latest_finished_run(session: AsyncSession, provider_id: str) -> SyncRun | None:
    """The latest sync that ended (succeeded or failed): the current validation report."""
    return (
        await session.scalars(
            select(SyncRun)
            .where(SyncRun.provider_id == provider_id, SyncRun.status != "running")
            .order_by(SyncRun.id.desc())
            .limit(1)
        )
    ).first()


async def health_records(
    session: AsyncSession, provider_ids: Sequence[str]
) -> dict[str, tuple[Provider, SyncRun | None]]:
    """Each provider's row with its latest finished sync, for many providers in two queries."""
    providers = {
        p.id: p
        for p in await session.scalars(select(Provider).where(Provider.id.in_(provider_ids)))
    }
    runs = {
        r.provider_id: r
        for r in await session.scalars(
            select(SyncRun).where(
                SyncRun.id.in_(
                    select(func.max(SyncRun.id))
                    .where(SyncRun.provider_id.in_(list(providers)), SyncRun.status != "running")
                    .group_by(SyncRun.provider_id)
                )
            )
        )
    }
    return {pid: (p, runs.get(pid)) for pid, p in providers.items()}


async def latest_successful_run_id(session: AsyncSession, provider_id: str) -> int | None:
    return (
        await session.scalars(
            select(SyncRun.id)
            .where(SyncRun.provider_id == provider_id, SyncRun.status == "succeeded")
            .order_by(SyncRun.id.desc())
            .limit(1)
        )
    ).first()
