"""Each travel-policy rule through the real `reserveVehicle` mutation, violated and satisfied:
maximum price per trip, allowed hours and weekdays (in the organisation's time zone), the
member's monthly budget and the business area at the start; and a cost-centre override that
changes the outcome.

A violation must answer `PolicyViolated` naming exactly that rule before anything reaches the
operator: the TOMP simulator's journal (every request it received) must not grow. A trip within
the rule is booked (`BookingSuccess`), which does reach the operator, so the journal check is
known to see calls when there are some."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from geographiclib.geodesic import Geodesic

from app.runtime import Runtime
from providers.simulators.tomp_server import TompSimulator
from tests.booking_support import bookable_operator, gql, key, sign_up

SLUG = "simscoot"

CREATE_ORG = """mutation C($name: String!, $tz: String!) {
  createOrganisation(name: $name, timezone: $tz) { id timezone } }"""
ADD_CENTRE = """mutation A($org: ID!, $code: String!) {
  addCostCentre(organisationId: $org, code: $code, name: $code) { id } }"""
INVITE = """mutation I($org: ID!, $email: String!, $role: OrganisationRole!, $cc: ID) {
  inviteMember(organisationId: $org, email: $email, role: $role, costCentreId: $cc) { token } }"""
ACCEPT = "mutation A($t: String!) { acceptInvitation(token: $t) { id } }"
MEMBERS = "query M($org: ID!) { organisation(id: $org) { members { id email } } }"
ME = "query { me { email } }"
CREATE_KEY = """mutation K($org: ID!) {
  createApiKey(organisationId: $org, name: "integration", scopes: [BOOKINGS_WRITE]) { secret } }"""
SET_POLICY = """mutation P($org: ID!, $centre: ID, $input: PolicyInput!) {
  setPolicy(organisationId: $org, costCentreId: $centre, input: $input) { organisationId } }"""
QUOTE = """query Q($v: ID!, $minutes: Int!) {
  quote(vehicleId: $v, minutes: $minutes) { id price { amountMinor currency } } }"""
RESERVE = """
mutation R($v: ID!, $k: String!, $offer: String, $org: ID, $member: ID, $cc: ID) {
  reserveVehicle(vehicleId: $v, idempotencyKey: $k, offerId: $offer, organisationId: $org,
                 onBehalfOf: $member, costCentre: $cc) {
    __typename
    ... on BookingSuccess { booking { id state estimatedPrice { amountMinor currency } } }
    ... on PolicyViolated { code violations { policy detail } }
    ... on BookingProblem { code message }
  }
}"""


@dataclass
class Offer:
    id: str
    amount_minor: int
    currency: str


@dataclass
class Company:
    """An organisation in ``timezone``, built through the API: an owner, a BOOKER, two RIDER
    members (cost centre SALES), a second cost centre EXEC and a bookings:write key."""

    id: str
    timezone: str
    owner: str
    booker: str
    rider: str
    rider_member: str
    colleague: str
    colleague_member: str
    sales: str
    exec: str
    key: str

    async def set_policy(
        self, api: httpx.AsyncClient, rules: dict[str, Any], centre: str | None = None
    ) -> None:
        body = await gql(
            api, SET_POLICY, {"org": self.id, "centre": centre, "input": rules}, self.owner
        )
        assert "errors" not in body, body

    def local_now(self) -> datetime:
        return datetime.now(ZoneInfo(self.timezone))


async def _join(api: httpx.AsyncClient, org: str, owner: str, role: str, cc: str | None) -> str:
    token, _ = await sign_up(api)
    email = (await gql(api, ME, {}, token))["data"]["me"]["email"]
    invited = await gql(api, INVITE, {"org": org, "email": email, "role": role, "cc": cc}, owner)
    accepted = await gql(api, ACCEPT, {"t": invited["data"]["inviteMember"]["token"]}, token)
    assert "errors" not in accepted, accepted
    return token


async def _member_id(api: httpx.AsyncClient, org: str, owner: str, token: str) -> str:
    email = (await gql(api, ME, {}, token))["data"]["me"]["email"]
    members = (await gql(api, MEMBERS, {"org": org}, owner))["data"]["organisation"]["members"]
    return str(next(m["id"] for m in members if m["email"] == email))


async def company(api: httpx.AsyncClient, timezone: str = "Europe/Amsterdam") -> Company:
    owner, _ = await sign_up(api)
    created = await gql(api, CREATE_ORG, {"name": "Acme", "tz": timezone}, owner)
    assert created["data"]["createOrganisation"]["timezone"] == timezone, created
    org = created["data"]["createOrganisation"]["id"]
    sales = (await gql(api, ADD_CENTRE, {"org": org, "code": "SALES"}, owner))["data"][
        "addCostCentre"
    ]["id"]
    exec_ = (await gql(api, ADD_CENTRE, {"org": org, "code": "EXEC"}, owner))["data"][
        "addCostCentre"
    ]["id"]
    booker = await _join(api, org, owner, "BOOKER", None)
    rider = await _join(api, org, owner, "RIDER", sales)
    colleague = await _join(api, org, owner, "RIDER", sales)
    secret = (await gql(api, CREATE_KEY, {"org": org}, owner))["data"]["createApiKey"]["secret"]
    return Company(
        id=org,
        timezone=timezone,
        owner=owner,
        booker=booker,
        rider=rider,
        rider_member=await _member_id(api, org, owner, rider),
        colleague=colleague,
        colleague_member=await _member_id(api, org, owner, colleague),
        sales=sales,
        exec=exec_,
        key=secret,
    )


def far_time_zone(now_utc: datetime) -> str:
    """A zone where it is another calendar day than in UTC right now, with at least an hour
    before either date changes: UTC+14 from 10:00 UTC, UTC-11 before 10:00 UTC. A check made
    in UTC instead of the organisation's zone then gets the day and the hour wrong."""
    return "Pacific/Kiritimati" if now_utc.hour >= 10 else "Pacific/Pago_Pago"


def vehicle_ids(sim: TompSimulator) -> list[str]:
    return [f"{SLUG}:{v.vehicle_id}" for v in sim.vehicles]


async def quote(api: httpx.AsyncClient, token: str, vehicle_id: str, minutes: int) -> Offer:
    body = await gql(api, QUOTE, {"v": vehicle_id, "minutes": minutes}, token)
    assert "errors" not in body, body
    found = body["data"]["quote"]
    return Offer(found["id"], found["price"]["amountMinor"], found["price"]["currency"])


async def reserve(
    api: httpx.AsyncClient, token: str, vehicle_id: str, **variables: Any
) -> dict[str, Any]:
    body = await gql(api, RESERVE, {"v": vehicle_id, "k": key(), **variables}, token)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["reserveVehicle"]
    return result


async def refused_for(
    sim: TompSimulator, policy: str, api: httpx.AsyncClient, token: str, vehicle_id: str, **v: Any
) -> None:
    """The reservation breaks ``policy`` (and nothing else) and no request reaches the
    operator."""
    before = len(sim.journal)
    result = await reserve(api, token, vehicle_id, **v)
    assert result["__typename"] == "PolicyViolated", result
    assert result["code"] == "POLICY_VIOLATION"
    assert [x["policy"] for x in result["violations"]] == [policy], result
    assert all(x["detail"] for x in result["violations"])
    assert sim.journal[before:] == [], [e.route for e in sim.journal[before:]]


async def booked(
    sim: TompSimulator, api: httpx.AsyncClient, token: str, vehicle_id: str, **v: Any
) -> dict[str, Any]:
    before = len(sim.journal)
    result = await reserve(api, token, vehicle_id, **v)
    assert result["__typename"] == "BookingSuccess", result
    assert result["booking"]["state"] == "CONFIRMED", result
    # The journal records operator calls: a booking made them.
    assert "POST /bookings" in {e.route for e in sim.journal[before:]}
    booking: dict[str, Any] = result["booking"]
    return booking


def hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M:00")


# ---------------------------------------------------------------- the rules


async def test_max_price_refuses_a_dearer_estimate_and_allows_one_up_to_it(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, SLUG) as (sim, _):
        org = await company(api)
        first, second = vehicle_ids(sim)[:2]
        offer = await quote(api, org.booker, first, minutes=12)
        await org.set_policy(
            api, {"maxPriceMinor": offer.amount_minor - 1, "currency": offer.currency}
        )
        await refused_for(
            sim, "MAX_PRICE", api, org.booker, first, offer=offer.id, member=org.rider_member
        )
        # The same estimate in another currency cannot be compared: refused as well.
        other_currency = "NOK" if offer.currency != "NOK" else "SEK"
        await org.set_policy(
            api, {"maxPriceMinor": offer.amount_minor * 100, "currency": other_currency}
        )
        await refused_for(
            sim, "MAX_PRICE", api, org.key, first, offer=offer.id, member=org.rider_member
        )
        # Exactly the limit is allowed.
        await org.set_policy(api, {"maxPriceMinor": offer.amount_minor, "currency": offer.currency})
        booking = await booked(sim, api, org.booker, first, offer=offer.id, member=org.rider_member)
        assert booking["estimatedPrice"] == {
            "amountMinor": offer.amount_minor,
            "currency": offer.currency,
        }
        # A dearer offer for another vehicle, by the member for themselves: refused.
        dearer = await quote(api, org.rider, second, minutes=30)
        assert dearer.amount_minor > offer.amount_minor
        await refused_for(sim, "MAX_PRICE", api, org.rider, second, offer=dearer.id, org=org.id)


async def test_allowed_hours_are_the_organisations_local_hours(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, SLUG) as (sim, _):
        org = await company(api, far_time_zone(datetime.now(UTC)))
        first, second = vehicle_ids(sim)[:2]
        now = org.local_now()
        # Local and UTC hours are far apart: a check of the UTC time against the local window
        # below would refuse the trip that is allowed.
        offset = now.utcoffset()
        assert offset is not None and abs(offset) >= timedelta(hours=10)
        # A window starting two hours from now and ending three hours from now.
        later = {
            "allowedFrom": hhmm(now + timedelta(hours=2)),
            "allowedUntil": hhmm(now + timedelta(hours=3)),
        }
        await org.set_policy(api, later)
        await refused_for(sim, "HOURS", api, org.booker, first, member=org.rider_member)
        await refused_for(sim, "HOURS", api, org.rider, first, org=org.id)
        # A window that ended at the start of the current minute (its end is exclusive).
        ended = {"allowedFrom": hhmm(now - timedelta(hours=2)), "allowedUntil": hhmm(now)}
        await org.set_policy(api, ended)
        await refused_for(sim, "HOURS", api, org.rider, first, org=org.id)
        # An hour either side of now (across midnight when now is near it).
        around = {
            "allowedFrom": hhmm(now - timedelta(hours=1)),
            "allowedUntil": hhmm(now + timedelta(hours=1)),
        }
        await org.set_policy(api, around)
        await booked(sim, api, org.booker, first, member=org.rider_member)
        await booked(sim, api, org.rider, second, org=org.id)


async def test_allowed_weekdays_are_the_organisations_local_days(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, SLUG) as (sim, _):
        now_utc = datetime.now(UTC)
        org = await company(api, far_time_zone(now_utc))
        first, second = vehicle_ids(sim)[:2]
        local_day = org.local_now().isoweekday()
        utc_day = now_utc.isoweekday()
        assert local_day != utc_day  # the zone was chosen so
        every_other_day = [d for d in range(1, 8) if d != local_day]
        assert utc_day in every_other_day
        await org.set_policy(api, {"allowedWeekdays": every_other_day})
        await refused_for(sim, "WEEKDAYS", api, org.booker, first, member=org.rider_member)
        await refused_for(sim, "WEEKDAYS", api, org.key, first, member=org.colleague_member)
        await org.set_policy(api, {"allowedWeekdays": [local_day]})
        await booked(sim, api, org.booker, first, member=org.rider_member)
        await booked(sim, api, org.colleague, second, org=org.id)


async def test_monthly_budget_counts_the_members_committed_spend(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, SLUG) as (sim, _):
        org = await company(api)
        v1, v2, v3, v4 = vehicle_ids(sim)[:4]
        held = await quote(api, org.booker, v1, minutes=10)
        wanted = await quote(api, org.booker, v2, minutes=20)
        assert held.currency == wanted.currency
        # Room for the first trip, not for both.
        budget = held.amount_minor + wanted.amount_minor - 1
        await org.set_policy(api, {"monthlyBudgetMinor": budget, "currency": held.currency})
        await booked(sim, api, org.booker, v1, offer=held.id, member=org.rider_member)
        # The first reservation's estimate is committed: the second goes over the budget.
        await refused_for(sim, "MONTHLY_BUDGET", api, org.rider, v2, offer=wanted.id, org=org.id)
        # The budget is per member: a colleague has spent nothing yet.
        await booked(sim, api, org.key, v2, offer=wanted.id, member=org.colleague_member)
        # Exactly reaching the budget is allowed.
        again = await quote(api, org.rider, v3, minutes=20)
        assert again.amount_minor == wanted.amount_minor
        await refused_for(sim, "MONTHLY_BUDGET", api, org.rider, v3, offer=again.id, org=org.id)
        await org.set_policy(
            api,
            {
                "monthlyBudgetMinor": held.amount_minor + again.amount_minor,
                "currency": held.currency,
            },
        )
        await booked(sim, api, org.rider, v3, offer=again.id, org=org.id)
        # And now the member's month is full: even the smallest further trip is refused.
        last = await quote(api, org.rider, v4, minutes=1)
        await refused_for(sim, "MONTHLY_BUDGET", api, org.rider, v4, offer=last.id, org=org.id)


async def test_business_area_at_the_start_of_the_trip(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, SLUG) as (sim, _):
        org = await company(api)
        inside = sim.vehicles[0]
        # The vehicle farthest from it, outside a 200 m square around it.
        outside = max(
            sim.vehicles[1:],
            key=lambda v: Geodesic.WGS84.Inverse(inside.lat, inside.lon, v.lat, v.lon)["s12"],
        )
        half_lat, half_lon = 0.0009, 0.0018  # about 100 m each way at Oslo's latitude
        south, north = inside.lat - half_lat, inside.lat + half_lat
        west, east = inside.lon - half_lon, inside.lon + half_lon
        assert not (south <= outside.lat <= north and west <= outside.lon <= east)
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        await org.set_policy(api, {"businessArea": {"type": "Polygon", "coordinates": [ring]}})
        await refused_for(
            sim,
            "BUSINESS_AREA",
            api,
            org.booker,
            f"{SLUG}:{outside.vehicle_id}",
            member=org.rider_member,
        )
        await booked(sim, api, org.booker, f"{SLUG}:{inside.vehicle_id}", member=org.rider_member)


async def test_a_cost_centre_override_changes_the_outcome(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, SLUG) as (sim, _):
        org = await company(api)
        first, second = vehicle_ids(sim)[:2]
        offer = await quote(api, org.booker, first, minutes=15)
        await org.set_policy(
            api, {"maxPriceMinor": offer.amount_minor - 1, "currency": offer.currency}
        )
        # Without an override, the organisation's rule holds for every cost centre.
        for centre in (org.exec, org.sales):
            await refused_for(
                sim,
                "MAX_PRICE",
                api,
                org.booker,
                first,
                offer=offer.id,
                member=org.rider_member,
                cc=centre,
            )
        # EXEC may spend up to the offer: charged to EXEC, the same trip is booked ...
        await org.set_policy(
            api, {"maxPriceMinor": offer.amount_minor, "currency": offer.currency}, org.exec
        )
        # ... while charged to the member's own SALES it is still refused.
        await refused_for(
            sim, "MAX_PRICE", api, org.booker, first, offer=offer.id, member=org.rider_member
        )
        await booked(
            sim, api, org.booker, first, offer=offer.id, member=org.rider_member, cc=org.exec
        )
        # An override can narrow too: SALES may not travel today (local day), EXEC may.
        today = org.local_now().isoweekday()
        await org.set_policy(api, {"maxPriceMinor": 10**9, "currency": offer.currency})
        await org.set_policy(
            api, {"allowedWeekdays": [d for d in range(1, 8) if d != today]}, org.sales
        )
        await refused_for(sim, "WEEKDAYS", api, org.colleague, second, org=org.id)
        await booked(sim, api, org.key, second, member=org.colleague_member, cc=org.exec)
