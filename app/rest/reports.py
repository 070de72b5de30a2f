"""``GET /reports/usage.csv``: the GraphQL ``usageReport`` as CSV, for spreadsheets and cron jobs.

``Authorization: Bearer <API key with reports:read, or a rider access token of an OWNER/ADMIN
member>``; the same access rules as GraphQL. Refusals are JSON ``{"error": {"code",
"message"}}``: 401 for a missing or bad credential, 403 for a member without the role or a key
without the scope, 404 for an organisation the caller cannot see, 400 for bad parameters.

The CSV has a header row; money is in integer minor units with its currency in its own column.
A text cell that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
tab or CR) is prefixed with ``'``: member names are chosen by members.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query, Request, Response

from app.accounts import Unauthenticated, rider_for_token
from app.fleet.access import ADMINS, actor_for
from app.fleet.api_keys import is_api_key, verify_api_key
from app.fleet.principal import ApiKeyPrincipal, OrgNotFound, Scope
from app.fleet.reports import GroupBy, UsageReport, usage_report
from app.platform.db import transaction
from app.platform.errors import DomainError, InvalidInput
from app.rate_limit import rate_limited
from app.rest.responses import refusal, status_of
from app.runtime import Runtime

__all__ = ["CSV_COLUMNS", "router", "usage_csv"]

# Rate limited as GraphQL is (per key, per rider; HTTP 429 with Retry-After), before any of the
# report's own work.
router = APIRouter(dependencies=[Depends(rate_limited())])

CSV_COLUMNS = (
    "group_key",
    "group_label",
    "currency",
    "trips",
    "total_minor",
    "minutes",
    "kilometres",
    "co2_grams",
    "trips_without_co2",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def usage_csv(report: UsageReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        writer.writerow(
            [
                _cell(row.group_key),
                _cell(row.group_label),
                row.currency or "",
                row.trips,
                row.total_minor,
                row.minutes,
                row.kilometres,
                row.co2_grams,
                row.trips_without_co2,
            ]
        )
    return out.getvalue()


async def _credentials(
    runtime: Runtime, authorization: str | None
) -> tuple[uuid.UUID | None, ApiKeyPrincipal | None]:
    """(rider id, API key) of the request; exactly one is set, or Unauthenticated."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("send `Authorization: Bearer <API key or access token>`")
    # Its own transaction: last_used_at (and an external identity's first account) is kept
    # even when the report is then refused.
    async with transaction(runtime.sessions) as session:
        if is_api_key(token):
            return None, await verify_api_key(session, token, datetime.now(UTC))
        rider = await rider_for_token(session, runtime.settings, token)
        return rider.id, None


@router.get("/reports/usage.csv", response_model=None)
async def usage_report_csv(
    request: Request,
    month: str = Query(..., description="YYYY-MM, in the organisation's time zone"),
    group_by: str = Query(..., alias="groupBy"),
    organisation_id: str | None = Query(None, alias="organisationId"),
) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        try:
            grouping = GroupBy(group_by.strip().upper())
        except ValueError:
            raise InvalidInput(
                f"groupBy is one of {', '.join(g.value for g in GroupBy)}", code="INVALID_GROUP_BY"
            ) from None
        wanted: uuid.UUID | None = None
        if organisation_id is not None:
            try:
                wanted = uuid.UUID(organisation_id)
            except ValueError:
                raise OrgNotFound(f"no organisation {organisation_id}") from None
        rider_id, api_key = await _credentials(runtime, request.headers.get("authorization"))
        async with runtime.sessions() as session:
            actor = await actor_for(
                session,
                rider_id=rider_id,
                api_key=api_key,
                organisation_id=wanted,
                roles=ADMINS,
                scope=Scope.REPORTS_READ,
            )
            report = await usage_report(session, actor, month=month, group_by=grouping)
    except DomainError as exc:
        return refusal(status_of(exc), exc.code, exc.message)
    filename = f"usage-{report.month}-{grouping.value.lower()}-{report.organisation_id}.csv"
    return Response(
        usage_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
