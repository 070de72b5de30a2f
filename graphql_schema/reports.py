"""Usage reports in the API: ``usageReport`` (the same rows as ``GET /reports/usage.csv``).

For the organisation's OWNER and ADMIN members and its API keys with ``reports:read``; other
members get ``FORBIDDEN``, a key without the scope ``MISSING_SCOPE``, anyone else
``NOT_FOUND``. What each column means: app/fleet/reports.py and docs/policies-and-reports.md.
"""

from __future__ import annotations

import strawberry

from app.fleet import reports as domain
from app.fleet.access import ADMINS
from app.fleet.principal import Scope
from app.fleet.reports import GroupBy
from graphql_schema.context import Context
from graphql_schema.org_access import optional_org_uuid
from graphql_schema.scalars import Long

__all__ = ["ReportQuery", "UsageReport", "UsageRow"]

Info = strawberry.Info[Context, None]

strawberry.enum(GroupBy, name="UsageGroupBy", description="How a usage report groups trips.")


@strawberry.type(description="Finished trips of one group in one currency.")
class UsageRow:
    group_key: str = strawberry.field(
        description="MEMBER: user id; COST_CENTRE: code, or (none); PROVIDER: provider id; "
        "FORM_FACTOR: the form factor."
    )
    group_label: str = strawberry.field(
        description="MEMBER: `Name <email>` or the email; COST_CENTRE: its name; PROVIDER: its "
        "name; FORM_FACTOR: the form factor."
    )
    currency: str | None = strawberry.field(description="Null for trips with no known price.")
    trips: int
    total_minor: Long = strawberry.field(description="Sum of final prices, in minor units.")
    minutes: float = strawberry.field(description="Sum of trip durations, 2 decimals.")
    kilometres: float = strawberry.field(description="Sum of trip distances, 3 decimals.")
    co2_grams: Long = strawberry.field(
        description="Estimated CO2 of the trips whose vehicle type states its emissions."
    )
    trips_without_co2: int = strawberry.field(
        description="Trips whose vehicle type states no emissions (not in co2Grams)."
    )

    @classmethod
    def from_domain(cls, row: domain.UsageRow) -> UsageRow:
        return cls(
            group_key=row.group_key,
            group_label=row.group_label,
            currency=row.currency,
            trips=row.trips,
            total_minor=Long(row.total_minor),
            minutes=float(row.minutes),
            kilometres=float(row.kilometres),
            co2_grams=Long(row.co2_grams),
            trips_without_co2=row.trips_without_co2,
        )


@strawberry.type(description="An organisation's finished trips of one month.")
class UsageReport:
    organisation_id: strawberry.ID
    month: str
    timezone: str = strawberry.field(description="The organisation's, which bounds the month.")
    group_by: GroupBy
    rows: list[UsageRow]


@strawberry.type
class ReportQuery:
    @strawberry.field(
        description='Usage of a month ("YYYY-MM", in the organisation\'s time zone): finished '
        "trips per group and currency. OWNER/ADMIN, or an API key with reports:read."
    )
    async def usage_report(
        self,
        info: Info,
        month: str,
        group_by: GroupBy,
        organisation_id: strawberry.ID | None = None,
    ) -> UsageReport:
        actor = await info.context.org_actor(
            optional_org_uuid(organisation_id, "organisation"),
            roles=ADMINS,
            scope=Scope.REPORTS_READ,
        )
        report = await info.context.policies.usage_report(actor, month=month, group_by=group_by)
        return UsageReport(
            organisation_id=strawberry.ID(str(report.organisation_id)),
            month=report.month,
            timezone=report.timezone,
            group_by=report.group_by,
            rows=[UsageRow.from_domain(r) for r in report.rows],
        )
