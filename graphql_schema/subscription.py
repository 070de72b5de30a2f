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
import math
import uuid
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, replace

import strawberry

from app.errors import DomainError
from app.live_updates import RESYNC, DeltaHub
from app.search.schemas import VehicleFilter, VehicleHit
from app.search.validation import Area
from app.vehicle_index import VehicleDelta, VehicleDoc
from geo.areas import BBox, Near
from geo.distance import ranking_meters
from graphql_schema.api_keys import require_vehicles_read
from graphql_schema.booking import BookingSubscription
from graphql_schema.context import Context
from graphql_schema.inputs import NearInput, VehicleFilterInput, WithinInput, vehicle_search
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


@dataclass(slots=True)
class _Changes:
    created: list[VehicleHit]
    updated: list[VehicleHit]
    removed: list[str]

    def __bool__(self) -> bool:
        return bool(self.created or self.updated or self.removed)


class _View:
    """What one subscriber has been sent, and the rule deciding what it should see."""

    def __init__(self, area: Area, flt: VehicleFilter, capacity: int) -> None:
        self.area = area
        self.flt = flt
        self.capacity = capacity
        # The subscriber's organisations: their private fleets are shown (issue 6).
        self.viewer_orgs: frozenset[uuid.UUID] = frozenset()
        # Every delta of the deployment reaches every subscriber: a box around the circle
        # turns most documents away with four comparisons, before filters and geodesics.
        self._box = _box_around(area.near) if area.near is not None else area.bbox
        self._ranked = area.ranked()
        self.visible: set[str] = set()
        # The providers whose vehicles were servable when the snapshot was taken.
        self.servable: frozenset[str] = frozenset()

    def reset(self, hits: Iterable[VehicleHit]) -> None:
        self.visible = {h.vehicle.id for h in hits}

    def hit(self, doc: VehicleDoc, servable: frozenset[str]) -> VehicleHit | None:
        """The vehicle as this subscriber should see it, or None if it should not."""
        box = self._box
        if box is not None and not box.contains(doc.lat, doc.lon):
            return None
        if doc.provider_id not in servable or not self.flt.matches(doc):
            return None
        # Measured as search measures it (the snapshot came from search): from the `near`
        # point or the box's centre.
        ranked = self._ranked
        distance = ranking_meters(ranked.lat, ranked.lon, doc.lat, doc.lon)
        return VehicleHit(doc, distance) if ranked.admits(doc.lat, doc.lon, distance) else None

    def apply(self, deltas: Iterable[VehicleDelta], servable: frozenset[str]) -> _Changes:
        # Later messages win: a vehicle created then moved in the same batch is one change.
        latest: dict[str, VehicleDoc | None] = {}
        for delta in deltas:
            for doc in delta.created:
                latest[doc.id] = doc
            for doc in delta.updated:
                latest[doc.id] = doc
            for vehicle_id in delta.removed:
                latest[vehicle_id] = None
        changes = _Changes([], [], [])
        for vehicle_id, latest_doc in latest.items():
            hit = self.hit(latest_doc, servable) if latest_doc is not None else None
            if hit is None:
                if vehicle_id in self.visible:
                    self.visible.discard(vehicle_id)
                    changes.removed.append(vehicle_id)
            elif vehicle_id in self.visible:
                changes.updated.append(hit)
            elif len(self.visible) < self.capacity:
                self.visible.add(vehicle_id)
                changes.created.append(hit)
        return changes


def _box_around(near: Near) -> BBox | None:
    """A box that holds the whole circle (with a margin), or None near the poles or the
    antimeridian, where the precise check alone decides."""
    margin = near.radius_meters * 1.01 + 1.0
    dlat = margin / 110_574.0  # metres per degree of latitude, at its smallest (equator)
    cos_lat = math.cos(math.radians(min(89.0, abs(near.lat) + dlat)))
    dlon = margin / (111_320.0 * cos_lat)
    if abs(near.lat) + dlat >= 89.0 or abs(near.lon) + dlon >= 180.0:
        return None
    return BBox(near.lat - dlat, near.lon - dlon, near.lat + dlat, near.lon + dlon)


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
        first: int | None = None,
    ) -> AsyncGenerator[VehicleUpdate, None]:
        ctx = info.context
        hub = ctx.live_updates
        if hub is None:
            raise DomainError("live updates are not available here", code="UNAVAILABLE")
        if ctx.authorization:  # an API key needs vehicles:read, as for search
            await require_vehicles_read(ctx)
        orgs = await ctx.viewer_organisations()
        search = await vehicle_search(ctx, near, within, filter, first, orgs)
        view = _View(search.area, search.flt, search.first)
        await _refresh_visibility(info, view, search.flt)
        settings = ctx.settings

        # Subscribed before the snapshot is read: a delta published in between is then
        # applied on top of it (and is at worst a repeat), never lost.
        async with hub.subscribe() as subscriber:
            yield await _snapshot(info, view)
            while True:
                items = await subscriber.next_batch(
                    settings.subscription_batch_seconds,
                    max_items=256,
                    idle_seconds=settings.subscription_recheck_seconds,
                )
                # Each message is a fresh start for per-request caches (the context lives as
                # long as the socket).
                ctx.loaders = ctx.loaders.fresh()
                deltas = [i for i in items if isinstance(i, VehicleDelta)]
                servable = await ctx.search.servable_providers(
                    including={d.provider_id for d in deltas}
                )
                # Who the subscriber is and which private fleets exist can change while the
                # socket is open (a key revoked: this raises and ends the stream; a fleet
                # made private, a membership ended): then the whole set is sent again.
                if ctx.authorization:
                    await require_vehicles_read(ctx)
                visibility_changed = await _refresh_visibility(info, view, search.flt)
                if RESYNC in items or servable != view.servable or visibility_changed:
                    # Missed deltas, or a provider's data turned stale or fresh (or it was
                    # disabled, enabled, added): deltas cannot express that, a snapshot can.
                    yield await _snapshot(info, view)
                    continue
                changes = view.apply(deltas, servable)
                if changes:
                    yield VehicleUpdate(
                        kind=VehicleUpdateKind.DELTA,
                        created=await vehicles_from_hits(info.context.reference, changes.created),
                        updated=await vehicles_from_hits(info.context.reference, changes.updated),
                        removed=[strawberry.ID(i) for i in changes.removed],
                    )


async def _refresh_visibility(info: Info, view: _View, base: VehicleFilter) -> bool:
    """Hide the private fleets of organisations the subscriber is not in (now); True if that
    changed what the subscriber may see."""
    ctx = info.context
    orgs = await ctx.viewer_organisations() if ctx.authorization else frozenset()
    hidden = await ctx.search.hidden_providers(orgs)
    changed = orgs != view.viewer_orgs or hidden != view.flt.hidden_providers
    view.viewer_orgs = orgs
    view.flt = replace(base, hidden_providers=hidden)
    return changed


async def _snapshot(info: Info, view: _View) -> VehicleUpdate:
    ctx = info.context
    view.servable = await ctx.search.servable_providers()
    hits = await ctx.search.vehicles(
        area=view.area, flt=view.flt, first=view.capacity, viewer_orgs=view.viewer_orgs
    )
    view.reset(hits)
    return VehicleUpdate(
        kind=VehicleUpdateKind.SNAPSHOT,
        created=await vehicles_from_hits(info.context.reference, hits),
        updated=[],
        removed=[],
    )


__all__ = ["DeltaHub", "Subscription", "VehicleUpdate", "VehicleUpdateKind"]
