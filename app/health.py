"""Provider health: one status from a provider's sync record, by rules in one place.

- ``DISABLED``: staff switched the provider off; nothing of it is served.
- ``DOWN``: its data is stale *and* the last ``provider_down_after_failures`` syncs failed in a
  row: the operator is unreachable or broken, not merely slow.
- ``STALE``: its last good data is older than ``stale_after_seconds`` (or there is none yet).
  Search hides its vehicles (``hide_stale_vehicles``) rather than serve them as if fresh.
- ``DEGRADED``: data is fresh, but the latest sync failed or reported validation errors.
- ``OK``: everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from app.platform.settings import Settings


class HealthStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    STALE = "stale"
    DOWN = "down"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class SyncRecord:
    """What health is decided from: the provider's row and its latest finished sync."""

    enabled: bool
    last_success_at: datetime | None
    consecutive_failures: int
    latest_errors: int  # validation errors of the latest finished sync (0 if none)


def data_age_seconds(last_success_at: datetime | None, now: datetime) -> float | None:
    return None if last_success_at is None else (now - last_success_at).total_seconds()


def is_fresh(last_success_at: datetime | None, settings: Settings, now: datetime) -> bool:
    age = data_age_seconds(last_success_at, now)
    return age is not None and age <= settings.stale_after_seconds


def health_status(
    record: SyncRecord, settings: Settings, now: datetime | None = None
) -> HealthStatus:
    now = now or datetime.now(UTC)
    if not record.enabled:
        return HealthStatus.DISABLED
    if not is_fresh(record.last_success_at, settings, now):
        if record.consecutive_failures >= settings.provider_down_after_failures:
            return HealthStatus.DOWN
        return HealthStatus.STALE
    if record.consecutive_failures > 0 or record.latest_errors > 0:
        return HealthStatus.DEGRADED
    return HealthStatus.OK
