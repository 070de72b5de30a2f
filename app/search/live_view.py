"""One live subscriber's view of a map area: what it has been sent, and the rule deciding what
it should see next (the same visibility as search: other organisations' private fleets and
stale or disabled providers left out; the same area, filter and ranking).

``vehicleUpdates`` (graphql_schema/subscription.py) starts a :class:`LiveView` with a snapshot,
then hands it every batch of deltas the process receives (app/live_updates.py). The view answers
with the changes relative to what the subscriber was sent, or with a new snapshot when deltas
cannot express what happened: deltas were missed, a provider turned stale or fresh, or who the
subscriber is (their organisations, the private fleets) changed.
"""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from app.live_updates import RESYNC
from app.search.schemas import VehicleFilter, VehicleHit
from app.search.service import SearchService
from app.search.validation import Area
from app.vehicle_index import VehicleDelta, VehicleDoc
from geo.areas import BBox, Near
from geo.distance import ranking_meters

__all__ = ["Changes", "DeltaBatch", "LiveView", "box_around"]


@dataclass(slots=True)
class Changes:
    """What to send: with ``snapshot`` the subscriber's whole set (in ``created``), replacing
    what it had; otherwise the changes to apply to it."""

    created: list[VehicleHit]
    updated: list[VehicleHit]
    removed: list[str]
    snapshot: bool = field(default=False)

    def __bool__(self) -> bool:
        return self.snapshot or bool(self.created or self.updated or self.removed)


class LiveView:
    """What one subscriber has been sent, and the rule deciding what it should see."""

    def __init__(self, area: Area, flt: VehicleFilter, capacity: int) -> None:
        self.area = area
        # The filter as asked; ``flt`` adds the providers hidden from this subscriber now.
        self.asked = flt
        self.flt = flt
        self.capacity = capacity
        # The subscriber's organisations: their private fleets are shown (issue 6).
        self.viewer_orgs: frozenset[uuid.UUID] = frozenset()
        # Every delta of the deployment reaches every subscriber: a box around the circle
        # turns most documents away with four comparisons, before filters and geodesics.
        self._box = box_around(area.near) if area.near is not None else area.bbox
        self._ranked = area.ranked()
        self.visible: set[str] = set()
        # The providers whose vehicles were servable when the snapshot was taken.
        self.servable: frozenset[str] = frozenset()

    async def snapshot(self, search: SearchService, viewer_orgs: frozenset[uuid.UUID]) -> Changes:
        """The current set, read from search as the subscriber may now see it."""
        await self._see_as(search, viewer_orgs)
        return await self._snapshot(search)

    async def advance(
        self,
        search: SearchService,
        batch: Sequence[object],
        viewer_orgs: frozenset[uuid.UUID],
    ) -> Changes:
        """The answer to one batch of the live channel (deltas, or ``RESYNC`` when some were
        lost): the changes for this subscriber, or a new snapshot."""
        deltas = [item for item in batch if isinstance(item, VehicleDelta)]
        servable = await search.servable_providers(including={d.provider_id for d in deltas})
        visibility_changed = await self._see_as(search, viewer_orgs)
        if RESYNC in batch or servable != self.servable or visibility_changed:
            # Missed deltas, or a provider's data turned stale or fresh (or it was disabled,
            # enabled, added), or a fleet turned private or a membership ended: deltas cannot
            # express that, a snapshot can.
            return await self._snapshot(search)
        return self.apply(deltas, servable)

    async def _see_as(self, search: SearchService, viewer_orgs: frozenset[uuid.UUID]) -> bool:
        """Hide the private fleets of organisations the subscriber is not in (now); True if
        that changed what the subscriber may see."""
        hidden = await search.hidden_providers(viewer_orgs)
        changed = viewer_orgs != self.viewer_orgs or hidden != self.flt.hidden_providers
        self.viewer_orgs = viewer_orgs
        self.flt = replace(self.asked, hidden_providers=hidden)
        return changed

    async def _snapshot(self, search: SearchService) -> Changes:
        self.servable = await search.servable_providers()
        hits = await search.vehicles(
            area=self.area, flt=self.flt, first=self.capacity, viewer_orgs=self.viewer_orgs
        )
        self.visible = {h.vehicle.id for h in hits}
        return Changes(hits, [], [], snapshot=True)

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

    def apply(self, deltas: Sequence[VehicleDelta], servable: frozenset[str]) -> Changes:
        batch = DeltaBatch.of(deltas)
        changes = Changes([], [], [])
        for vehicle_id in self._candidates(batch):
            latest_doc = batch.latest[vehicle_id]
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

    def _candidates(self, batch: DeltaBatch) -> list[str]:
        """The batch's vehicles that can change this subscriber's set: those it was sent, and
        those whose last position lies in cells its area overlaps. Any other is outside the
        area (or removed) and was not sent, so it changes nothing. In the order the batch
        first names them: which of several newcomers fill the last free places depends on it."""
        box = self._box
        found = set(batch.latest if box is None else batch.ids_near(box))
        found.update(batch.latest.keys() & self.visible)
        return sorted(found, key=batch.order.__getitem__)


#: Side of the cells (degrees) a batch's vehicles are filed under (:attr:`DeltaBatch.cells`).
CELL_DEGREES = 0.01
# Batches merged lately, by the identity of their messages (each entry holds its messages, so
# no key can be reused while it is here): enough for the few ways one sync's messages fall
# into the batches of a process's subscribers.
_RECENT_BATCHES = 4


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / CELL_DEGREES), math.floor(lon / CELL_DEGREES)


@dataclass(frozen=True, slots=True)
class DeltaBatch:
    """A batch of delta messages merged: each vehicle's last state in the batch (None when it
    was removed; later messages win, so a vehicle created then moved is one change), keyed in
    the order the batch first names them (``order``: that position), and the vehicles with a
    position by grid cell.

    Every live subscriber of a process receives the same message objects, and most receive a
    sync's messages as the same batch: it is merged once (:meth:`of`), and each view reads the
    few cells its area overlaps and the vehicles it tracks instead of every document
    (bench/subscriptions.py: 2,000 subscribers each scanning a 10,000-vehicle sync)."""

    messages: tuple[VehicleDelta, ...]
    latest: dict[str, VehicleDoc | None]
    order: dict[str, int]
    cells: dict[tuple[int, int], list[str]]

    _recent: ClassVar[OrderedDict[tuple[int, ...], DeltaBatch]] = OrderedDict()

    @classmethod
    def of(cls, deltas: Sequence[VehicleDelta]) -> DeltaBatch:
        key = tuple(map(id, deltas))
        batch = cls._recent.get(key)
        if batch is not None:
            cls._recent.move_to_end(key)
            return batch
        batch = cls._merge(tuple(deltas))
        cls._recent[key] = batch
        while len(cls._recent) > _RECENT_BATCHES:
            cls._recent.popitem(last=False)
        return batch

    @classmethod
    def _merge(cls, deltas: tuple[VehicleDelta, ...]) -> DeltaBatch:
        latest: dict[str, VehicleDoc | None] = {}
        for delta in deltas:
            for doc in delta.created:
                latest[doc.id] = doc
            for doc in delta.updated:
                latest[doc.id] = doc
            for vehicle_id in delta.removed:
                latest[vehicle_id] = None
        cells: dict[tuple[int, int], list[str]] = {}
        for vehicle_id, last in latest.items():
            if last is not None:
                cells.setdefault(_cell(last.lat, last.lon), []).append(vehicle_id)
        order = {vehicle_id: n for n, vehicle_id in enumerate(latest)}
        return cls(deltas, latest, order, cells)

    def ids_near(self, box: BBox) -> list[str]:
        """The vehicles whose last position may be in ``box``: those of the cells it overlaps
        (a superset, to be checked exactly)."""
        lat0, lon0 = _cell(box.min_lat, box.min_lon)
        lat1, lon1 = _cell(box.max_lat, box.max_lon)
        found: list[str] = []
        if (lat1 - lat0 + 1) * (lon1 - lon0 + 1) <= len(self.cells):
            for lat_cell in range(lat0, lat1 + 1):
                for lon_cell in range(lon0, lon1 + 1):
                    found.extend(self.cells.get((lat_cell, lon_cell), ()))
        else:  # a box wider than the batch's spread: fewer cells to walk the other way
            for (lat_cell, lon_cell), ids in self.cells.items():
                if lat0 <= lat_cell <= lat1 and lon0 <= lon_cell <= lon1:
                    found.extend(ids)
        return found


def box_around(near: Near) -> BBox | None:
    """A box that holds the whole circle (with a margin), or None near the poles or the
    antimeridian, where the precise check alone decides."""
    margin = near.radius_meters * 1.01 + 1.0
    dlat = margin / 110_574.0  # metres per degree of latitude, at its smallest (equator)
    cos_lat = math.cos(math.radians(min(89.0, abs(near.lat) + dlat)))
    dlon = margin / (111_320.0 * cos_lat)
    if abs(near.lat) + dlat >= 89.0 or abs(near.lon) + dlon >= 180.0:
        return None
    return BBox(near.lat - dlat, near.lon - dlon, near.lat + dlat, near.lon + dlon)
