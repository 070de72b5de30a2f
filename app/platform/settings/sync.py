"""Syncing the operators' feeds: cadence, per-sync limits, where a due sync runs (in process or
queued for workers), how many at once, claims and backoff; and the language preferred in
localized feed strings.

Read by providers/dispatch.py (cadence, deadline, claim lease, backoff), providers/scheduler.py
and app/commands/worker.py (dispatch, concurrency, queue bound), providers/sync.py (deadline,
feed size, language), providers/breaker.py (deadline), app/runtime.py (HTTP timeout),
app/task_queue.py and app/commands/scheduler.py (dispatch), app/main.py (``background_sync``),
app/rest/gbfs.py (language).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class SyncSettings(MobilityBaseSettings):
    # Sync cadence: a provider is polled at its feeds' ttl, bounded by these.
    sync_min_interval_seconds: float = 10.0
    sync_max_interval_seconds: float = 300.0
    sync_http_timeout_seconds: float = 10.0
    sync_deadline_seconds: float = 60.0
    # A feed body larger than this is refused, read as a stream and never held whole.
    sync_max_feed_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    background_sync: bool = True
    # Where the scheduler sends a due sync (providers/dispatch.py): run it in the scheduler's
    # own process ("inprocess", the one-machine default of `mobility serve`), or put it on the
    # Redis stream that `mobility worker` processes consume ("queue").
    sync_dispatch: Literal["inprocess", "queue"] = "inprocess"
    # Syncs one process runs at the same time (in-process scheduler, or one worker).
    sync_concurrency: int = Field(default=4, ge=1)
    # With queued dispatch: at most this many syncs queued or running at once, all workers
    # together (more would only wait in the stream until their claims lapse).
    sync_max_queued: int = Field(default=50, ge=1)
    # How long a dispatched sync's claim stands before the provider may be claimed again (its
    # worker presumed dead). Unset: twice the sync deadline plus 30 s.
    sync_claim_lease_seconds: float | None = Field(default=None, gt=0)
    # A failing provider is retried with exponential backoff and full jitter, capped here.
    sync_max_backoff_seconds: float = 3600.0
    # Preferred language for GBFS v3 localized strings (then the feed's first, then any).
    preferred_language: str = "en"
