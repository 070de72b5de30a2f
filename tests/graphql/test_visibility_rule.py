"""Visibility as one rule: to an outsider, a private fleet's id is answered exactly as an id that
does not exist, on every field that takes one.

The fields are enumerated from the schema itself: every argument of a query, mutation or
subscription root field (and of the input objects they take) that names a provider, a vehicle,
a vehicle type or a station must have a case below, or this test fails, so a field added later
cannot forget the rule. Each case is asked twice per outsider, with the private fleet's id and
with a made-up id of the same shape; the two answers must be identical once the id itself is
replaced by a placeholder. Insiders (organisation A) get a different answer for the private id:
the control that shows no case is vacuous.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import graphql
import httpx
import pytest

from app.platform.settings import PROJECT_ROOT
from app.runtime import Runtime
from tests.booking_support import gql
from tests.graphql.test_private_fleet_visibility import CENTER, POOL, World, world
from tests.graphql.test_subscriptions import served

__all__ = ["world"]

GHOST = "ghostfleet"  # a provider that does not exist


@dataclass(frozen=True)
class Case:
    name: str
    covers: tuple[str, ...]  # "Root.field.argument[.inputField]" this case exercises
    document: str  # with {provider}, {vehicle}, {type} where the id goes
    variables: dict[str, Any] | None = None
    subscription: bool = False


POINT = f"lat: {CENTER[0]}, lon: {CENTER[1]}"
AREA = f"near: {{{POINT}, radiusMeters: 2000}}"

# $PROVIDER, $VEHICLE and $TYPE are replaced by the id asked about, $KEY by a new key.
CASES = [
    Case(
        "vehicles filtered by provider",
        ("Query.vehicles.filter.providers",),
        "{ vehicles(" + AREA + ', filter: {providers: ["$PROVIDER"]}) { id } }',
    ),
    Case(
        "vehiclesConnection filtered by provider",
        ("Query.vehiclesConnection.filter.providers",),
        "{ vehiclesConnection(" + AREA + ', filter: {providers: ["$PROVIDER"]}) '
        "{ edges { node { id } } } }",
    ),
    Case("vehicle by id", ("Query.vehicle.id",), '{ vehicle(id: "$VEHICLE") { id } }'),
    Case(
        "stations filtered by provider",
        ("Query.stations.filter.providers",),
        "{ stations(" + AREA + ', filter: {providers: ["$PROVIDER"]}) { id } }',
    ),
    Case(
        "geofencing zones of a provider",
        ("Query.geofencingZones.providers",),
        '{ geofencingZones(providers: ["$PROVIDER"]) { id } }',
    ),
    Case(
        "may a ride end here, by provider and form factor",
        ("Query.rideEndCheck.providerId",),
        "{ rideEndCheck(" + POINT + ', providerId: "$PROVIDER", formFactor: SCOOTER_STANDING) '
        "{ allowed reason zone { name provider { vehicleCount } } } }",
    ),
    Case(
        "may a ride end here, by vehicle type",
        ("Query.rideEndCheck.vehicleTypeId",),
        "{ rideEndCheck(" + POINT + ', vehicleTypeId: "$TYPE") { allowed reason zone { name } } }',
    ),
    Case(
        "may a ride end here, by vehicle",
        ("Query.rideEndCheck.vehicleId",),
        "{ rideEndCheck(" + POINT + ', vehicleId: "$VEHICLE") { allowed reason } }',
    ),
    Case(
        "a quote for a vehicle",
        ("Query.quote.vehicleId",),
        '{ quote(vehicleId: "$VEHICLE", minutes: 10) { id } }',
    ),
    Case(
        "reserving a vehicle",
        ("Mutation.reserveVehicle.vehicleId",),
        'mutation { reserveVehicle(vehicleId: "$VEHICLE", idempotencyKey: "$KEY") '
        "{ __typename ... on BookingProblem { code message } } }",
    ),
    Case(
        "live vehicles filtered by provider",
        ("Subscription.vehicleUpdates.filter.providers",),
        "subscription { vehicleUpdates(" + AREA + ', filter: {providers: ["$PROVIDER"]}) '
        "{ kind created { id } } }",
        subscription=True,
    ),
]

# Arguments that take ids but of things that are not a fleet's (bookings, organisations,
# members, webhooks, keys, cost centres: their own visibility is tested in
# test_tenant_isolation.py), or that administer providers (staff only: FORBIDDEN for anyone
# else before any id is looked at, tested in test_admin.py).
NOT_FLEET_IDS = {
    "booking",
    "bookingId",
    "organisationId",
    "onBehalfOf",
    "costCentre",
    "costCentreId",
    "endpointId",
    "userId",
    "memberId",
    "keyId",
    "offerId",
    "idempotencyKey",
    "token",
}
ADMIN_ONLY = {
    "addProvider",
    "updateProvider",
    "setProviderEnabled",
    "deleteProvider",
    "syncProvider",
    "setProviderCredentials",
    "setProviderPrivate",
    "setProviderOverrides",
    "setProviderBooking",
}
FLEET_ARGUMENT = {"providers", "providerId", "vehicleId", "vehicleTypeId", "stationId"}
# An `id` argument is a fleet's id when the field answers a fleet's thing.
FLEET_TYPES = {"Vehicle", "Station", "Provider", "VehicleType", "PricingPlan", "GeofencingZone"}


def _fleet_arguments() -> set[str]:
    """Every root-field argument path of the schema that may name a fleet's thing."""
    schema = graphql.build_schema((PROJECT_ROOT / "schema.graphql").read_text())
    found: set[str] = set()

    def walk(path: str, name: str, type_: Any, depth: int = 0) -> None:
        named = graphql.get_named_type(type_)
        if isinstance(named, graphql.GraphQLInputObjectType) and depth < 3:
            for field_name, field in named.fields.items():
                walk(f"{path}.{field_name}", field_name, field.type, depth + 1)
        elif name in FLEET_ARGUMENT and name not in NOT_FLEET_IDS:
            found.add(path)

    for root in (schema.query_type, schema.mutation_type, schema.subscription_type):
        assert root is not None
        for field_name, field in root.fields.items():
            if field_name in ADMIN_ONLY:
                continue
            answers = graphql.get_named_type(field.type).name
            for arg_name, arg in field.args.items():
                if arg_name == "id" and answers in FLEET_TYPES:
                    found.add(f"{root.name}.{field_name}.id")
                walk(f"{root.name}.{field_name}.{arg_name}", arg_name, arg.type)
    return found


def test_every_field_that_takes_a_fleet_id_has_a_case() -> None:
    covered = {c for case in CASES for c in case.covers}
    missing = _fleet_arguments() - covered
    assert missing == set(), f"fields that take a fleet's id with no visibility case: {missing}"


async def _answer(
    api: httpx.AsyncClient, base_url: str, case: Case, token: str | None, ids: dict[str, str]
) -> Any:
    document = case.document.replace("$KEY", str(uuid.uuid4()))  # a new request each time
    for placeholder, value in ids.items():
        document = document.replace(f"${placeholder.upper()}", value)
    if not case.subscription:
        return await gql(api, document, None, token)
    async with subscribed_document(base_url, document, token) as first:
        return first


class subscribed_document:
    def __init__(self, base_url: str, document: str, token: str | None) -> None:
        self.args = (base_url, document, token)

    async def __aenter__(self) -> Any:
        import websockets

        base_url, document, token = self.args
        url = base_url.replace("http://", "ws://") + "/graphql"
        self.ws = await websockets.connect(url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
        init: dict[str, Any] = {"type": "connection_init"}
        if token is not None:
            init["payload"] = {"Authorization": f"Bearer {token}"}
        await self.ws.send(json.dumps(init))
        assert json.loads(await self.ws.recv())["type"] == "connection_ack"
        await self.ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": document}})
        )
        while True:
            message = json.loads(await self.ws.recv())
            if message["type"] != "ping":
                return {k: message.get(k) for k in ("type", "payload")}

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()


def _masked(answer: Any, ids: dict[str, str]) -> str:
    text = json.dumps(answer, sort_keys=True)
    for value in sorted(ids.values(), key=len, reverse=True):
        text = text.replace(value, "<id>")
    return text


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_private_fleets_id_is_answered_as_an_unknown_one(
    runtime: Runtime, api: httpx.AsyncClient, world: World, case: Case
) -> None:
    await world.make_private(api)
    async with runtime.sessions() as session:
        from sqlalchemy import text

        vehicle = (
            await session.execute(
                text("SELECT id FROM vehicles WHERE provider_id = :p ORDER BY id LIMIT 1"),
                {"p": POOL},
            )
        ).scalar_one()
    private = {"provider": POOL, "vehicle": vehicle, "type": f"{POOL}:es"}
    unknown = {"provider": GHOST, "vehicle": f"{GHOST}:p1", "type": f"{GHOST}:es"}
    async with served(runtime) as base_url:
        for who, token in world.outsiders().items():
            told = await _answer(api, base_url, case, token, private)
            made_up = await _answer(api, base_url, case, token, unknown)
            assert _masked(told, private) == _masked(made_up, unknown), (who, told, made_up)
        insider = await _answer(api, base_url, case, world.org_a.rider, private)
        ghost = await _answer(api, base_url, case, world.org_a.rider, unknown)
        assert _masked(insider, private) != _masked(ghost, unknown), (
            "the insider's control: A's member sees its own fleet",
            insider,
        )


@pytest.mark.parametrize("file", ["gbfs", "vehicle_status", "station_information"])
async def test_gbfs_republishing_answers_a_private_fleet_as_an_unknown_one(
    api: httpx.AsyncClient, world: World, file: str
) -> None:
    await world.make_private(api)
    told = await api.get(f"/gbfs/v3/{POOL}/{file}.json")
    made_up = await api.get(f"/gbfs/v3/{GHOST}/{file}.json")
    assert told.status_code == made_up.status_code == 404
    assert told.text.replace(POOL, "<id>") == made_up.text.replace(GHOST, "<id>")


DISABLE = "mutation($id: ID!) { setProviderEnabled(id: $id, enabled: false) { id enabled } }"


async def test_a_disabled_private_fleet_is_as_unknown_to_outsiders_as_an_enabled_one(
    runtime: Runtime, api: httpx.AsyncClient, world: World
) -> None:
    # Disabling a fleet hides its vehicles from everyone; it must not make the fleet itself
    # visible to outsiders (listed by `providers`, accepted as a filter): the private rule is
    # about who may know it exists, whatever its state.
    await world.make_private(api)
    disabled = await gql(api, DISABLE, {"id": POOL}, world.staff)
    assert disabled["data"]["setProviderEnabled"] == {"id": POOL, "enabled": False}, disabled
    listing = "{ providers { id } }"
    filtered = "{ vehicles(" + AREA + ', filter: {providers: ["$PROVIDER"]}) { id } }'
    for who, token in world.outsiders().items():
        listed = {p["id"] for p in (await gql(api, listing, None, token))["data"]["providers"]}
        assert POOL not in listed, who
        told = await gql(api, filtered.replace("$PROVIDER", POOL), None, token)
        made_up = await gql(api, filtered.replace("$PROVIDER", GHOST), None, token)
        assert _masked(told, {"p": POOL}) == _masked(made_up, {"p": GHOST}), (who, told)
    # The control: its own organisation still sees it listed (disabled).
    listed = (await gql(api, listing, None, world.org_a.rider))["data"]["providers"]
    assert POOL in {p["id"] for p in listed}
