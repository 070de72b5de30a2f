"""Live updates over WebSockets: how subscriptions batch and re-check, keepalive pings, and
subscriptions per socket.

Read by graphql_schema/subscription.py (batching, re-check), graphql_schema/booking.py
(re-check) and app/main.py (keepalive, handed to graphql_schema/http.py; subscriptions per
socket).
"""

from __future__ import annotations

from pydantic import Field

from app.platform.settings.base import MobilityBaseSettings


class LiveUpdateSettings(MobilityBaseSettings):
    # Live updates (subscription vehicleUpdates): deltas are gathered this long into one
    # message; with nothing to send, a subscription re-checks which providers are servable
    # this often (a provider turning stale is a change no delta announces).
    subscription_batch_seconds: float = Field(default=0.25, ge=0)
    subscription_recheck_seconds: float = Field(default=30.0, gt=0)
    # Server pings on graphql-transport-ws sockets, so mobile networks and proxies keep idle
    # sockets open; 0 turns them off.
    ws_keepalive_seconds: float = Field(default=15.0, ge=0)
    max_subscriptions_per_socket: int = Field(default=10, ge=1)
