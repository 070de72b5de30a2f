"""Probes and graceful shutdown: how long ``mobility serve`` drains before it stops accepting,
how long in-flight work gets to finish, and how long each readiness check may take.

Read by app/server.py (the drain and the grace), app/commands/worker.py (the grace) and
app/probes.py (the check timeout); described in docs/operations-shutdown.md.
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class ShutdownSettings(MobilityBaseSettings):
    # After SIGTERM: /readyz answers 503 at once, WebSocket subscriptions are closed with 1001,
    # and the listening socket stays open this long, so a load balancer polling /readyz takes
    # the instance out before new connections would be refused (0: stop accepting at once).
    shutdown_drain_seconds: float = Field(default=0.0, ge=0)
    # Then in-flight requests and WebSocket close handshakes get this long before uvicorn
    # cancels what is left (`mobility worker`: its running tasks get this long). A booking
    # operation cancelled this way still runs to its end (bounded by booking_deadline_seconds
    # per operator call) before the process exits.
    shutdown_grace_seconds: float = Field(default=30.0, gt=0)
    # Each /readyz check (database, migrations, search index) gives up after this long, so a
    # hung store makes the probe answer 503 instead of hanging it.
    readiness_check_timeout_seconds: float = Field(default=2.0, gt=0)
