"""Booking for an organisation: on behalf of members, by bookers and API keys, within the
policy, reported to the outbox in the booking's own transactions; private fleets seen and
booked by their organisation only."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from app.booking.maintenance import run_maintenance
from app.runtime import Runtime
from tests.booking_support import (
    BOOKING_FIELDS,
    CANCEL,
    END,
    PAUSE,
    RESERVE_PROBLEMS,
    RESUME,
    START,
    SharedClock,
    bookable_operator,
    clock_of,
    codes,
    gql,
    key,
    sign_up,
    staff_token,
    visible_ids,
)

CREATE_ORG = """mutation C($name: String!) {
  createOrganisation(name: $name, timezone: "Europe/Amsterdam") { id } }"""
ADD_CENTRE = """mutation A($org: ID!, $code: String!) {
  addCostCentre(organisationId: $org, code: $code, name: $code) { id } }"""
INVITE = """mutation I($org: ID!, $email: String!, $role: OrganisationRole!, $cc: ID) {
  inviteMember(organisationId: $org, email: $email, role: $role, costCentreId: $cc) { token } }"""
ACCEPT = "mutation A($t: String!) { acceptInvitation(token: $t) { id } }"
MEMBERS = "query M($org: ID!) { organisation(id: $org) { members { id email } } }"
ME = "query { me { email } }"
CREATE_KEY = """mutation K($org: ID!, $scopes: [ApiKeyScope!]!) {
  createApiKey(organisationId: $org, name: "integration", scopes: $scopes) { secret } }"""
SET_POLICY = """mutation P($org: ID!, $input: PolicyInput!) {
  setPolicy(organisationId: $org, input: $input) { allowedFormFactors } }"""
PRIVATE = """mutation P($id: ID!, $org: ID) { setProviderPrivate(id: $id, organisationId: $org) {
  id } }"""
VEHICLE = "query V($id: ID!) { vehicle(id: $id) { id } }"
BOOKING = f"query B($id: ID!) {{ booking(id: $id) {{ {BOOKING_FIELDS} }} }}"
MY_BOOKINGS = "query { myBookings { id state } }"
RESERVE_FOR = f"""
mutation R($v: ID!, $k: String!, $org: ID, $member: ID, $cc: ID) {{
  reserveVehicle(vehicleId: $v, idempotencyKey: $k, organisationId: $org, onBehalfOf: $member,
                 costCentre: $cc) {{
    __typename
    ... on BookingSuccess {{ booking {{ id state }} }}
    ... on PolicyViolated {{ violations {{ policy detail }} }}
    {RESERVE_PROBLEMS}
  }}
}}"""


class Org:
    """An organisation built through the API: an owner, a cost centre, a BOOKER and a RIDER."""

    def __init__(self) -> None:
        self.id = ""
        self.owner = ""
        self.booker = ""
        self.rider = ""
        self.rider_member = ""
        self.rider_user = ""
        self.centre = ""

    @classmethod
    async def build(cls, api: httpx.AsyncClient, name: str) -> Org:
        org = cls()
        org.owner, _ = await sign_up(api)
        org.id = (await gql(api, CREATE_ORG, {"name": name}, org.owner))["data"][
            "createOrganisation"
        ]["id"]
        org.centre = (await gql(api, ADD_CENTRE, {"org": org.id, "code": "SALES"}, org.owner))[
            "data"
        ]["addCostCentre"]["id"]
        org.booker = await org._join(api, "BOOKER")
        org.rider = await org._join(api, "RIDER", org.centre)
        email = (await gql(api, ME, {}, org.rider))["data"]["me"]["email"]
        members = (await gql(api, MEMBERS, {"org": org.id}, org.owner))["data"]["organisation"]
        org.rider_member = next(m["id"] for m in members["members"] if m["email"] == email)
        return org

    async def _join(self, api: httpx.AsyncClient, role: str, cc: str | None = None) -> str:
        token, _ = await sign_up(api)
        email = (await gql(api, ME, {}, token))["data"]["me"]["email"]
        invited = await gql(
            api, INVITE, {"org": self.id, "email": email, "role": role, "cc": cc}, self.owner
        )
        accepted = await gql(api, ACCEPT, {"t": invited["data"]["inviteMember"]["token"]}, token)
        assert "errors" not in accepted, accepted
        return token

    async def key(self, api: httpx.AsyncClient, *scopes: str) -> str:
        body = await gql(api, CREATE_KEY, {"org": self.id, "scopes": list(scopes)}, self.owner)
        assert "errors" not in body, body
        return str(body["data"]["createApiKey"]["secret"])


async def _outbox(runtime: Runtime) -> list[tuple[str, str, dict[str, Any]]]:
    async with runtime.sessions() as session:
        rows = await session.execute(
            text("SELECT organisation_id, event_type, payload FROM outbox_events ORDER BY id")
        )
        return [(str(r.organisation_id), r.event_type, r.payload) for r in rows]


async def test_a_booker_books_for_a_member_and_the_organisation_hears_of_each_step(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        org = await Org.build(api, "Acme")
        vehicle_id = f"simscoot:{sim.vehicles[0].vehicle_id}"
        body = await gql(
            api,
            RESERVE_FOR,
            {"v": vehicle_id, "k": key(), "org": org.id, "member": org.rider_member},
            org.booker,
        )
        result = body["data"]["reserveVehicle"]
        assert result["__typename"] == "BookingSuccess", result
        booking_id = result["booking"]["id"]
        # The member's booking: in their list, and theirs to ride.
        mine = (await gql(api, MY_BOOKINGS, {}, org.rider))["data"]["myBookings"]
        assert [b["id"] for b in mine] == [booking_id]
        started = await gql(api, START, {"bookingId": booking_id, "key": key()}, org.rider)
        assert started["data"]["startTrip"]["__typename"] == "BookingSuccess"
        async with runtime.sessions() as session:
            row = (
                await session.execute(
                    text(
                        "SELECT organisation_id, cost_centre_id, booked_by_user_id IS NOT NULL "
                        "AS by_booker FROM bookings"
                    )
                )
            ).one()
        # Charged to the member's own cost centre by default.
        assert (str(row.organisation_id), str(row.cost_centre_id), row.by_booker) == (
            org.id,
            org.centre,
            True,
        )
        events = await _outbox(runtime)
        assert [(o, t) for o, t, _ in events] == [
            (org.id, "booking.confirmed"),
            (org.id, "booking.started"),
        ]
        assert {p["booking_id"] for _, _, p in events} == {booking_id}


async def test_every_outcome_of_an_organisations_booking_reaches_the_outbox(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    """Finished, cancelled and expired, each from the real transition that makes it (a ride's
    end, a cancellation, the upkeep's expiry), each once, each naming its booking."""
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        clock = SharedClock(sim)
        async with clock_of(runtime, clock):
            org = await Org.build(api, "Acme")
            vehicles = [(f"simscoot:{v.vehicle_id}", v) for v in sim.vehicles[:3]]

            async def reserve(vehicle_id: str) -> str:
                variables = {"v": vehicle_id, "k": key(), "org": org.id}
                body = await gql(api, RESERVE_FOR, variables, org.rider)
                assert body["data"]["reserveVehicle"]["__typename"] == "BookingSuccess", body
                return str(body["data"]["reserveVehicle"]["booking"]["id"])

            ridden = await reserve(vehicles[0][0])
            for step in (START, PAUSE, RESUME):
                clock.advance(60)
                await gql(api, step, {"bookingId": ridden, "key": key()}, org.rider)
            parked = vehicles[0][1]
            end = {"bookingId": ridden, "key": key(), "lat": parked.lat, "lon": parked.lon}
            ended = await gql(api, END, end, org.rider)
            assert ended["data"]["endTrip"]["__typename"] == "BookingSuccess", ended

            cancelled = await reserve(vehicles[1][0])
            answer = await gql(api, CANCEL, {"bookingId": cancelled, "key": key()}, org.rider)
            assert answer["data"]["cancelBooking"]["__typename"] == "BookingSuccess", answer

            expired = await reserve(vehicles[2][0])
            clock.advance(16 * 60)  # the simulator holds reservations for 15 minutes
            report = await run_maintenance(runtime.bookings)
            assert [str(b) for b in report.expired] == [expired]

        events = [(o, t, p["booking_id"]) for o, t, p in await _outbox(runtime)]
        assert sorted(events) == sorted(
            [
                (org.id, "booking.confirmed", ridden),
                (org.id, "booking.started", ridden),
                (org.id, "booking.finished", ridden),
                (org.id, "booking.confirmed", cancelled),
                (org.id, "booking.cancelled", cancelled),
                (org.id, "booking.confirmed", expired),
                (org.id, "booking.expired", expired),
            ]
        )


async def test_api_keys_book_on_behalf_within_their_scope_and_organisation(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        org = await Org.build(api, "Acme")
        other = await Org.build(api, "Other")
        writer = await org.key(api, "BOOKINGS_WRITE")
        reader = await org.key(api, "VEHICLES_READ")
        foreign = await other.key(api, "BOOKINGS_WRITE")
        vehicles = [f"simscoot:{v.vehicle_id}" for v in sim.vehicles[:3]]
        variables = {"v": vehicles[0], "k": key(), "member": org.rider_member}
        assert codes(await gql(api, RESERVE_FOR, variables, reader)) == ["MISSING_SCOPE"]
        assert codes(await gql(api, RESERVE_FOR, {**variables, "k": key()}, foreign)) == [
            "NOT_FOUND"
        ]
        no_member = await gql(api, RESERVE_FOR, {"v": vehicles[0], "k": key()}, writer)
        assert codes(no_member) == ["ON_BEHALF_OF_REQUIRED"]
        booked = await gql(api, RESERVE_FOR, {**variables, "k": key()}, writer)
        booking_id = booked["data"]["reserveVehicle"]["booking"]["id"]
        # The key reads and changes its organisation's booking; the other organisation's key
        # learns nothing of it.
        assert (await gql(api, BOOKING, {"id": booking_id}, writer))["data"]["booking"]["id"]
        assert codes(await gql(api, BOOKING, {"id": booking_id}, foreign)) == ["BOOKING_NOT_FOUND"]
        cancel = await gql(api, CANCEL, {"bookingId": booking_id, "key": key()}, foreign)
        assert codes(cancel) == ["BOOKING_NOT_FOUND"]
        cancelled = await gql(api, CANCEL, {"bookingId": booking_id, "key": key()}, writer)
        assert cancelled["data"]["cancelBooking"]["__typename"] == "BookingSuccess"
        # A RIDER charges their own cost centre only (another's policy may be looser).
        other_centre = (await gql(api, ADD_CENTRE, {"org": org.id, "code": "EXEC"}, org.owner))[
            "data"
        ]["addCostCentre"]["id"]
        charged = await gql(
            api,
            RESERVE_FOR,
            {"v": vehicles[2], "k": key(), "org": org.id, "cc": other_centre},
            org.rider,
        )
        assert codes(charged) == ["FORBIDDEN"]
        # A RIDER member may not book for a colleague.
        colleague = await gql(
            api,
            RESERVE_FOR,
            {"v": vehicles[1], "k": key(), "org": org.id, "member": org.rider_member},
            org.rider,
        )
        assert codes(colleague) == ["FORBIDDEN"]


async def test_a_policy_violation_is_refused_before_the_operator_and_reported(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        org = await Org.build(api, "Acme")
        policy = {"allowedFormFactors": ["BICYCLE"], "allowedProviders": ["somebody-else"]}
        body = await gql(api, SET_POLICY, {"org": org.id, "input": policy}, org.owner)
        assert "errors" not in body, body
        vehicle_id = f"simscoot:{sim.vehicles[0].vehicle_id}"
        refused = await gql(
            api,
            RESERVE_FOR,
            {"v": vehicle_id, "k": key(), "org": org.id, "member": org.rider_member},
            org.booker,
        )
        result = refused["data"]["reserveVehicle"]
        assert result["__typename"] == "PolicyViolated", result
        assert result["code"] == "POLICY_VIOLATION"
        assert sorted(v["policy"] for v in result["violations"]) == ["FORM_FACTOR", "PROVIDER"]
        assert not sim.requests_to("POST /planning/offers"), "no operator call"
        [(org_id, event, payload)] = await _outbox(runtime)
        assert (org_id, event) == (org.id, "policy.violation")
        assert payload["vehicle_id"] == vehicle_id
        # A personal booking of the same rider is not the organisation's business.
        personal = await gql(api, RESERVE_FOR, {"v": vehicle_id, "k": key()}, org.rider)
        assert personal["data"]["reserveVehicle"]["__typename"] == "BookingSuccess"


async def test_a_private_fleet_is_its_organisations_only(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        org = await Org.build(api, "Acme")
        outsider, _ = await sign_up(api)
        staff = await staff_token(runtime)
        made = await gql(api, PRIVATE, {"id": "simscoot", "org": org.id}, staff)
        assert "errors" not in made, made
        target = sim.vehicles[0]
        vehicle_id = f"simscoot:{target.vehicle_id}"
        key_of_org = await org.key(api, "VEHICLES_READ")
        assert vehicle_id in await visible_ids(api, org.rider, target.lat, target.lon)
        assert vehicle_id in await visible_ids(api, key_of_org, target.lat, target.lon)
        assert vehicle_id not in await visible_ids(api, outsider, target.lat, target.lon)
        anonymous = await gql(
            api,
            "query V($lat: Float!, $lon: Float!) { vehicles(near: {lat: $lat, lon: $lon, "
            "radiusMeters: 5000}, first: 200) { id } }",
            {"lat": target.lat, "lon": target.lon},
        )
        assert vehicle_id not in {v["id"] for v in anonymous["data"]["vehicles"]}
        assert (await gql(api, VEHICLE, {"id": vehicle_id}, outsider))["data"]["vehicle"] is None
        assert (await gql(api, VEHICLE, {"id": vehicle_id}, org.rider))["data"]["vehicle"]
        # Not re-published as GBFS, where anyone could read it.
        assert (await api.get("/gbfs/v3/simscoot/gbfs.json")).status_code == 404
        # Nor through the other ways in: quotes, the providers list, rideEndCheck.
        quote = "query Q($v: ID!) { quote(vehicleId: $v, minutes: 5) { id } }"
        assert codes(await gql(api, quote, {"v": vehicle_id}, outsider)) == ["VEHICLE_NOT_FOUND"]
        assert codes(await gql(api, quote, {"v": vehicle_id})) == ["VEHICLE_NOT_FOUND"]
        assert (await gql(api, quote, {"v": vehicle_id}, org.rider))["data"]["quote"]["id"]
        listed = "query { providers { id } }"
        assert "simscoot" not in {
            p["id"] for p in (await gql(api, listed, {}, outsider))["data"]["providers"]
        }
        assert "simscoot" in {
            p["id"] for p in (await gql(api, listed, {}, org.rider))["data"]["providers"]
        }
        end_check = (
            "query E($v: ID!, $lat: Float!, $lon: Float!) "
            "{ rideEndCheck(lat: $lat, lon: $lon, vehicleId: $v) { allowed } }"
        )
        probe = {"v": vehicle_id, "lat": target.lat, "lon": target.lon}
        assert codes(await gql(api, end_check, probe, outsider)) == ["UNKNOWN_VEHICLE"]
        zones = (
            "query Z($lat: Float!, $lon: Float!) { geofencingZones(near: {lat: $lat, "
            "lon: $lon, radiusMeters: 5000}) { name } }"
        )
        here = {"lat": target.lat, "lon": target.lon}
        assert (await gql(api, zones, here, outsider))["data"]["geofencingZones"] == []
        assert (await gql(api, zones, here))["data"]["geofencingZones"] == []
        assert [
            z["name"] for z in (await gql(api, zones, here, org.rider))["data"]["geofencingZones"]
        ] == [sim.zone.name]
        taken = await gql(api, RESERVE_FOR, {"v": vehicle_id, "k": key()}, outsider)
        assert taken["data"]["reserveVehicle"]["reason"] == "NOT_FOUND"
        # A pool vehicle is booked for the organisation, within its policy.
        personal = await gql(api, RESERVE_FOR, {"v": vehicle_id, "k": key()}, org.rider)
        assert codes(personal) == ["ORGANISATION_REQUIRED"]
        mine = await gql(api, RESERVE_FOR, {"v": vehicle_id, "k": key(), "org": org.id}, org.rider)
        assert mine["data"]["reserveVehicle"]["__typename"] == "BookingSuccess"
        # Public again: everyone sees the others.
        await gql(api, PRIVATE, {"id": "simscoot", "org": None}, staff)
        other = sim.vehicles[1]
        assert f"simscoot:{other.vehicle_id}" in await visible_ids(
            api, outsider, other.lat, other.lon
        )


async def test_an_organisations_ride_ends_inside_its_business_area(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    async with bookable_operator(runtime, "simscoot") as (sim, _):
        org = await Org.build(api, "Acme")
        target = sim.vehicles[0]
        lat, lon = target.lat, target.lon
        ring = [
            [lon - 0.01, lat - 0.01],
            [lon + 0.01, lat - 0.01],
            [lon + 0.01, lat + 0.01],
            [lon - 0.01, lat + 0.01],
            [lon - 0.01, lat - 0.01],
        ]
        area = {"businessArea": {"type": "Polygon", "coordinates": [ring]}}
        assert "errors" not in await gql(api, SET_POLICY, {"org": org.id, "input": area}, org.owner)
        booked = await gql(
            api,
            RESERVE_FOR,
            {"v": f"simscoot:{target.vehicle_id}", "k": key(), "org": org.id},
            org.rider,
        )
        booking_id = booked["data"]["reserveVehicle"]["booking"]["id"]
        await gql(api, START, {"bookingId": booking_id, "key": key()}, org.rider)
        end = (
            "mutation E($b: ID!, $k: String!, $lat: Float!, $lon: Float!) { endTrip(bookingId: $b, "
            "idempotencyKey: $k, lat: $lat, lon: $lon) { __typename "
            "... on PolicyViolated { violations { policy } } } }"
        )
        outside = await gql(
            api, end, {"b": booking_id, "k": key(), "lat": lat - 0.02, "lon": lon}, org.rider
        )
        assert outside["data"]["endTrip"] == {
            "__typename": "PolicyViolated",
            "violations": [{"policy": "BUSINESS_AREA"}],
        }
        inside = await gql(
            api, end, {"b": booking_id, "k": key(), "lat": lat - 0.005, "lon": lon}, org.rider
        )
        assert inside["data"]["endTrip"]["__typename"] == "BookingSuccess"
