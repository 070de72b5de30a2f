"""May a ride end here? The geofencing answer for a point and a vehicle, a vehicle type or a
provider's form factor, by GBFS precedence (geo/zones.py decides; this module reads the zones,
types and global rules it needs). The search service asks it for the API, with the caller's
visibility; booking asks it at the end of a ride, inside its own session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.platform.errors import InvalidInput, NotFound
from app.search import repository
from app.search.schemas import ZoneRow
from app.search.validation import check_point, validate_providers
from geo.zones import Rule, ZoneCandidate, decide

__all__ = ["RideEndAnswer", "RideEndQuestion", "ride_end_check"]


@dataclass(frozen=True, slots=True)
class RideEndQuestion:
    """May a ride end at (lat, lon)? For exactly one of: a vehicle, a vehicle type, or a
    provider's vehicles of one form factor."""

    lat: float
    lon: float
    vehicle_id: str | None = None
    vehicle_type_id: str | None = None
    provider_id: str | None = None
    form_factor: str | None = None


@dataclass(frozen=True, slots=True)
class RideEndAnswer:
    allowed: bool
    reason: str
    zone: ZoneRow | None
    vehicle_type_ids: list[str]


async def ride_end_check(
    session: AsyncSession,
    question: RideEndQuestion,
    *,
    now: datetime | None = None,
    hidden: frozenset[str] = frozenset(),
) -> RideEndAnswer:
    """May a ride end here? GBFS precedence: first matching zone's rules, then global rules."""
    lat, lon = question.lat, question.lon
    vehicle_id, vehicle_type_id = question.vehicle_id, question.vehicle_type_id
    provider_id, form_factor = question.provider_id, question.form_factor
    check_point(lat, lon, "rideEndCheck")
    now = now or datetime.now(UTC)
    # ``hidden``: private fleets this caller may not see; each of their ids is answered as an
    # id that does not exist (UNKNOWN_VEHICLE, UNKNOWN_VEHICLE_TYPE, UNKNOWN_PROVIDER).
    given = sum(x is not None for x in (vehicle_id, vehicle_type_id, provider_id or form_factor))
    if given != 1:
        raise InvalidInput(
            "give exactly one of vehicleId, vehicleTypeId, or providerId with formFactor",
            code="INVALID_ARGUMENTS",
        )
    if vehicle_id is not None:
        hit = await repository.vehicle_by_id(session, vehicle_id)
        if hit is None or hit.vehicle.provider_id in hidden:
            raise NotFound(f"unknown vehicle {vehicle_id!r}", code="UNKNOWN_VEHICLE")
        vehicle_type_id = hit.vehicle.vehicle_type_id
        if vehicle_type_id is None:
            provider_id, form_factor = hit.vehicle.provider_id, hit.vehicle.form_factor
    if vehicle_type_id is not None:
        types = await repository.vehicle_types_by_ids(session, [vehicle_type_id])
        if vehicle_type_id not in types or types[vehicle_type_id].provider_id in hidden:
            raise NotFound(f"unknown vehicle type {vehicle_type_id!r}", code="UNKNOWN_VEHICLE_TYPE")
        provider_id = types[vehicle_type_id].provider_id
        type_ids: list[str | None] = [vehicle_type_id]
    else:
        if provider_id is None or form_factor is None:
            raise InvalidInput("providerId and formFactor go together", code="INVALID_ARGUMENTS")
        await validate_providers(session, [provider_id], hidden)
        of_kind = await repository.vehicle_types_of(session, provider_id, form_factor)
        all_types = await repository.vehicle_types_of(session, provider_id)
        if all_types and not of_kind:
            raise InvalidInput(
                f"provider {provider_id!r} has no vehicle type of form factor {form_factor}",
                code="NO_SUCH_FORM_FACTOR",
            )
        # No vehicle_types at all: rules can only be the untyped ones.
        type_ids = [t.id for t in of_kind] if of_kind else [None]

    providers = await repository.providers_by_ids(session, [provider_id])
    global_rules = [Rule.from_json(r) for r in providers[provider_id].global_rules]
    zone_rows = await repository.zones_covering(session, provider_id=provider_id, lat=lat, lon=lon)
    candidates = [
        ZoneCandidate(
            zone_id=z.id,
            ordinal=z.ordinal,
            rules=tuple(Rule.from_json(r) for r in z.rules),
            start=z.starts_at,
            end=z.ends_at,
        )
        for z in zone_rows
    ]
    by_id = {z.id: z for z in zone_rows}
    named_types = [t for t in type_ids if t]
    # With several types of one form factor, the ride may end only if it may for each of them.
    decisions = [decide(candidates, global_rules, type_id, now) for type_id in type_ids]
    for decision in decisions:
        zone = by_id.get(decision.zone_id) if decision.zone_id else None
        where = (
            f"inside zone {zone.name or zone.id!r}"
            if zone is not None
            else "outside every zone, under the operator's global rules"
        )
        if decision.rule is not None and not decision.rule.ride_end_allowed:
            return RideEndAnswer(False, f"ending a ride is not allowed {where}", zone, named_types)
        if decision.rule is not None and decision.rule.station_parking:
            return RideEndAnswer(
                False, f"{where}, vehicles may only be parked at a station", zone, named_types
            )
    decision = decisions[0]
    zone = by_id.get(decision.zone_id) if decision.zone_id else None
    if decision.source == "zone":
        label = zone.name or zone.id if zone is not None else ""
        reason = f"ending a ride is allowed inside zone {label!r}"
    elif decision.source == "global":
        reason = "ending a ride is allowed here under the operator's global rules"
    else:
        reason = "no geofencing rule of the operator restricts ending a ride here"
    return RideEndAnswer(True, reason, zone, named_types)
