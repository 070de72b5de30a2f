"""Root subscription: live vehicles on a map area, over ``graphql-transport-ws``.

``vehicleUpdates`` first sends the current set (``SNAPSHOT``), then ``DELTA`` batches relative to
what this subscriber has been sent: a vehicle entering the area or starting to match the filter
is *created*, one that changed inside it *updated*, one that left, was reserved, stopped matching
or vanished *removed*. Deltas arrive from every API process through Redis (app/live_updates.py);
if some were missed (a slow socket, a Redis outage) a new ``SNAPSHOT`` replaces the client's
whole set, so the client's view is never silently wrong.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from app.live_updates import DeltaHub, Subscriber
from app.search.live_view import Changes, LiveView
from graphql_schema.booking import BookingSubscription
from graphql_schema.context import Context
from graphql_schema.inputs import (
    NearInput,
    VehicleFilterInput,
    WithinInput,
    vehicle_search,
)
from graphql_schema.types import Vehicle, vehicles_from_hits

Info = strawberry.Info[Context, None]


@strawberry.enum(description="SNAPSHOT: replace your whole set; DELTA: apply to it.")
class VehicleUpdateKind(enum.Enum):
    SNAPSHOT = "SNAPSHOT"
    DELTA = "DELTA"


@strawberry.type(description="One message of `vehicleUpdates`.")
class VehicleUpdate:
    kind: VehicleUpdateKind
    created: list[Vehicle]
    updated: list[Vehicle]
    removed: list[strawberry.ID] = strawberry.field(description="Ids to drop from your set.")


TrackedCount = Annotated[
    int | None,
    strawberry.argument(
        description="How many vehicles are sent and tracked at once, 1 to "
        "MOBILITY_MAX_FIRST (200 by default); without it, MOBILITY_DEFAULT_FIRST (50). "
        "A vehicle that enters the area while as many are tracked is sent once one "
        "leaves and it next changes."
    ),
]


@strawberry.type
class Subscription(BookingSubscription):
    @strawberry.subscription(
        description="Vehicles on a map area, live: first a SNAPSHOT of the current set (at most "
        "`first`, nearest first as in `vehicles`), then DELTA batches relative to what you were "
        "sent. `first` also bounds how many vehicles are tracked at once. Give exactly one of "
        "`near` / `within`."
    )
    async def vehicle_updates(
        self,
        info: Info,
        near: NearInput | None = None,
        within: WithinInput | None = None,
        filter: VehicleFilterInput | None = None,
        first: TrackedCount = None,
    ) -> AsyncGenerator[VehicleUpdate, None]:
        ctx = info.context
        hub = ctx.live_updates
        search = await vehicle_search(ctx, near, within, filter, first)
        view = LiveView(search.area, search.flt, search.first)

        # Subscribed before the snapshot is read: a delta published in between is then
        # applied on top of it (and is at worst a repeat), never lost.
        async with hub.subscribe() as subscriber:
            snapshot = await view.snapshot(ctx.search, await _organisations(ctx))
            message: VehicleUpdate | None = await _message(ctx, snapshot)
            del snapshot
            while True:
                if message is not None:
                    yield message
                    # Sent (the next value is asked for once this one went out). graphql-core
                    # and Strawberry hold a stream's last value until the next one, and a
                    # subscriber idles most of its life: its vehicles and their documents are
                    # let go now, not kept per socket (about 70 KiB for a snapshot of 50;
                    # bench/subscriptions.py). Only what this frame holds across the yield
                    # stays alive, so the next message is built in a call of its own.
                    _let_go(message)
                message = await _next_message(ctx, view, subscriber)


async def _next_message(
    ctx: Context, view: LiveView, subscriber: Subscriber
) -> VehicleUpdate | None:
    """Waits for the next batch of deltas; the message for it, or None if it changes nothing
    for this subscriber."""
    settings = ctx.settings
    batch = await subscriber.next_batch(
        settings.subscription_batch_seconds,
        max_items=256,
        idle_seconds=settings.subscription_recheck_seconds,
    )
    # Each message is a fresh start for per-request caches (the context lives as long as the
    # socket).
    ctx.loaders = ctx.loaders.fresh()
    # Who the subscriber is can change while the socket is open: a key revoked raises here and
    # ends the stream; a membership ended is seen by the view.
    await ctx.require_vehicles_read()
    changes = await view.advance(ctx.search, batch, await _organisations(ctx))
    return await _message(ctx, changes) if changes else None


def _let_go(message: VehicleUpdate) -> None:
    message.created = []
    message.updated = []
    message.removed = []


async def _organisations(ctx: Context) -> frozenset[uuid.UUID]:
    """The organisations whose private fleets the subscriber sees, as of now."""
    return await ctx.viewer_organisations() if ctx.authorization else frozenset()


async def _message(ctx: Context, changes: Changes) -> VehicleUpdate:
    return VehicleUpdate(
        kind=VehicleUpdateKind.SNAPSHOT if changes.snapshot else VehicleUpdateKind.DELTA,
        created=await vehicles_from_hits(ctx.reference, changes.created),
        updated=await vehicles_from_hits(ctx.reference, changes.updated),
        removed=[strawberry.ID(i) for i in changes.removed],
    )


__all__ = ["DeltaHub", "Subscription", "VehicleUpdate", "VehicleUpdateKind"]
