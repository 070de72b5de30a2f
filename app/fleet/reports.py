"""Monthly usage reports of an organisation: one aggregate query in PostgreSQL.

A trip counts in a month when it is FINISHED and its ``ended_at`` falls in that calendar month
*in the organisation's time zone* (a trip ending 00:30 on the 1st in Oslo belongs to the new
month although it is still the old one in UTC). Rows are per group and per currency, since
amounts are never converted; trips with no known price form a row whose currency is null.

Per row: ``trips``; ``total_minor``, the sum of final prices (a finished trip without one adds
nothing); ``minutes``, the sum of ended - started (2 decimals); ``kilometres``, the sum of the
trips' distances (3 decimals); ``co2_grams``, the sum of km x the vehicle type's
``co2_grams_per_km`` over the trips whose vehicle type states it (rounded to whole grams), and
``trips_without_co2``, the trips it is unknown for (type not stating it, or no longer known).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    Numeric,
    String,
    and_,
    cast,
    extract,
    func,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.booking.states import BookingState
from app.fleet.principal import OrgActor, OrgNotFound, Scope
from app.models import Booking, CostCentre, Organisation, Provider, User
from app.platform.errors import InvalidInput

__all__ = ["NO_COST_CENTRE", "GroupBy", "UsageReport", "UsageRow", "parse_month", "usage_report"]

NO_COST_CENTRE = "(none)"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class GroupBy(StrEnum):
    MEMBER = "MEMBER"
    COST_CENTRE = "COST_CENTRE"
    PROVIDER = "PROVIDER"
    FORM_FACTOR = "FORM_FACTOR"


@dataclass(frozen=True, slots=True)
class UsageRow:
    # MEMBER: user id / "Name <email>" (or the email); COST_CENTRE: code / name, "(none)" for
    # trips without one; PROVIDER: provider id / its name; FORM_FACTOR: the form factor, twice.
    group_key: str
    group_label: str
    currency: str | None
    trips: int
    total_minor: int
    minutes: Decimal
    kilometres: Decimal
    co2_grams: int
    trips_without_co2: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    organisation_id: uuid.UUID
    month: str  # YYYY-MM
    timezone: str
    group_by: GroupBy
    rows: list[UsageRow]


def parse_month(value: str) -> tuple[int, int]:
    match = _MONTH.match(value.strip())
    # The month after the last one must still be a date (9999-12 has none), and a report
    # before 1970 has nothing to show.
    if (
        match is None
        or not 1 <= int(match.group(2)) <= 12
        or not 1970 <= int(match.group(1)) <= 9998
    ):
        raise InvalidInput(
            f"month must be YYYY-MM between 1970-01 and 9998-12, not {value!r}",
            code="INVALID_MONTH",
        )
    return int(match.group(1)), int(match.group(2))


def _require_reader(actor: OrgActor) -> None:
    # The API resolves the actor with these same rules; checked again here so that no caller
    # of the service can skip them.
    actor.require_admin_or_scope(
        Scope.REPORTS_READ, members="reports need the OWNER or ADMIN role in the organisation"
    )


def _group(group_by: GroupBy) -> tuple[ColumnElement[Any], ColumnElement[Any], list[Any]]:
    """(key, label, GROUP BY columns) for one grouping."""
    if group_by is GroupBy.MEMBER:
        label = func.coalesce(User.display_name + " <" + User.email + ">", User.email)
        return cast(User.id, String), label, [User.id, User.email, User.display_name]
    if group_by is GroupBy.COST_CENTRE:
        return (
            func.coalesce(CostCentre.code, NO_COST_CENTRE),
            func.coalesce(CostCentre.name, NO_COST_CENTRE),
            [CostCentre.id, CostCentre.code, CostCentre.name],
        )
    if group_by is GroupBy.PROVIDER:
        # No foreign key from bookings to providers (history outlives a provider): fall back
        # to the id when the provider is gone.
        return (
            Booking.provider_id.expression,
            func.coalesce(Provider.name, Booking.provider_id),
            [Booking.provider_id, Provider.name],
        )
    form_factor = Booking.form_factor.expression
    return form_factor, form_factor, [form_factor]


async def usage_report(
    session: AsyncSession, actor: OrgActor, *, month: str, group_by: GroupBy
) -> UsageReport:
    """The organisation's usage in ``month`` ("YYYY-MM"), one row per group and currency,
    ordered by label then currency. OWNER/ADMIN members, or API keys with ``reports:read``."""
    _require_reader(actor)
    year, number = parse_month(month)
    org = await session.get(Organisation, actor.organisation_id)
    if org is None:
        raise OrgNotFound(f"no organisation {actor.organisation_id}")
    next_year, next_number = (year + 1, 1) if number == 12 else (year, number + 1)
    # Local midnights of the 1st, turned into instants by PostgreSQL in the organisation's zone
    # (timezone(zone, timestamp) is `timestamp AT TIME ZONE zone`), so DST is PostgreSQL's job
    # and the bounds stay comparable with the ended_at index-friendly way round.
    local_start = literal(datetime(year, number, 1), DateTime(timezone=False))
    local_end = literal(datetime(next_year, next_number, 1), DateTime(timezone=False))
    starts = func.timezone(Organisation.timezone, local_start)
    ends = func.timezone(Organisation.timezone, local_end)

    # The booking's own figure (its vehicle type's at reservation), so past months stay put.
    co2_known = Booking.co2_grams_per_km.is_not(None) & (Booking.co2_grams_per_km >= 0)
    # numeric before summing: exact sums of the float columns, rounded once at the end.
    metres = func.coalesce(cast(Booking.distance_meters, Numeric), 0)
    seconds = func.coalesce(extract("epoch", Booking.ended_at - Booking.started_at), 0)
    key, label, group_columns = _group(group_by)

    stmt = (
        select(
            key.label("group_key"),
            label.label("group_label"),
            Booking.currency,
            func.count().label("trips"),
            func.coalesce(func.sum(Booking.final_price_minor), 0).label("total_minor"),
            func.round(func.sum(seconds) / 60, 2).label("minutes"),
            func.round(func.sum(metres) / 1000, 3).label("kilometres"),
            cast(
                func.round(
                    func.coalesce(
                        func.sum(metres * cast(Booking.co2_grams_per_km, Numeric)).filter(
                            co2_known
                        ),
                        0,
                    )
                    / 1000
                ),
                Integer,
            ).label("co2_grams"),
            func.count().filter(~co2_known).label("trips_without_co2"),
        )
        .select_from(Booking)
        .join(Organisation, Organisation.id == Booking.organisation_id)
        .where(
            Booking.organisation_id == actor.organisation_id,
            Booking.state == BookingState.FINISHED.value,
            Booking.ended_at >= starts,
            Booking.ended_at < ends,
        )
        .group_by(*group_columns, Booking.currency)
        .order_by(label, key, Booking.currency.nulls_last())
    )
    if group_by is GroupBy.MEMBER:
        stmt = stmt.join(User, User.id == Booking.user_id)
    elif group_by is GroupBy.COST_CENTRE:
        stmt = stmt.outerjoin(
            CostCentre,
            and_(
                CostCentre.id == Booking.cost_centre_id,
                CostCentre.organisation_id == Booking.organisation_id,
            ),
        )
    elif group_by is GroupBy.PROVIDER:
        stmt = stmt.outerjoin(Provider, Provider.id == Booking.provider_id)

    rows = [
        UsageRow(
            group_key=r.group_key,
            group_label=r.group_label,
            currency=r.currency,
            trips=int(r.trips),
            total_minor=int(r.total_minor),
            minutes=Decimal(r.minutes),
            kilometres=Decimal(r.kilometres),
            co2_grams=int(r.co2_grams),
            trips_without_co2=int(r.trips_without_co2),
        )
        for r in await session.execute(stmt)
    ]
    return UsageReport(
        organisation_id=org.id,
        month=f"{year:04d}-{number:02d}",
        timezone=org.timezone,
        group_by=group_by,
        rows=rows,
    )
