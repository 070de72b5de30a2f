"""API keys through GraphQL: created by an org admin and shown once, used as a bearer token on
the same endpoint within their scopes, revoked, expired and rotated with immediate effect, and
invisible to everyone outside the organisation."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from geopy.distance import geodesic
from sqlalchemy import update

from app.fleet.api_keys import SHOWN_CHARS, TEST_PREFIX, well_formed
from app.fleet.principal import Role
from app.models import ApiKey, Organisation, OrganisationMember
from app.platform.db import transaction
from app.runtime import Runtime
from tests.booking_support import codes, gql, sign_up

KEY_FIELDS = "id name prefix scopes createdAt expiresAt lastUsedAt revokedAt"
CREATE = f"""mutation C($org: ID!, $name: String!, $scopes: [ApiKeyScope!]!, $exp: DateTime) {{
  createApiKey(organisationId: $org, name: $name, scopes: $scopes, expiresAt: $exp) {{
    secret apiKey {{ {KEY_FIELDS} }} }} }}"""
LIST = f"query L($org: ID!) {{ apiKeys(organisationId: $org) {{ {KEY_FIELDS} }} }}"
ROTATE = f"""mutation R($id: ID!, $overlap: Int) {{
  rotateApiKey(id: $id, overlapSeconds: $overlap) {{
  secret apiKey {{ {KEY_FIELDS} }} }} }}"""
REVOKE = f"mutation V($id: ID!) {{ revokeApiKey(id: $id) {{ {KEY_FIELDS} }} }}"
VEHICLES = "query { vehicles(near: {lat: 52.42, lon: 10.78, radiusMeters: 300}) { id } }"
VEHICLE = 'query { vehicle(id: "nobody:nothing") { id } }'
TRIPS = """query { tripOptions(from: {lat: 52.42, lon: 10.78}, to: {lat: 52.43, lon: 10.79}) {
  walkMinutes } }"""
QUOTE = 'query { quote(vehicleId: "nobody:nothing", minutes: 10) { rideMinutes } }'
# TRIPS's walk, worked out here: the geodesic distance at the default walking speed.
WALK_MINUTES = math.ceil(geodesic((52.42, 10.78), (52.43, 10.79)).meters / 1000 / 4.8 * 60)


async def _organisation(runtime: Runtime, members: dict[str, Role]) -> str:
    """A new organisation (made with the ORM) whose members are the given user ids."""
    async with transaction(runtime.sessions) as session:
        org = Organisation(name=f"org-{uuid.uuid4().hex[:6]}")
        session.add(org)
        await session.flush()
        for user_id, role in members.items():
            session.add(
                OrganisationMember(organisation_id=org.id, user_id=uuid.UUID(user_id), role=role)
            )
        return str(org.id)


async def _owner_and_org(api: httpx.AsyncClient, runtime: Runtime) -> tuple[str, str]:
    token, user_id = await sign_up(api)
    return token, await _organisation(runtime, {user_id: Role.OWNER})


async def _new_key(
    api: httpx.AsyncClient, token: str, org: str, scopes: list[str], **extra: Any
) -> dict[str, Any]:
    body = await gql(
        api, CREATE, {"org": org, "name": "dispatch", "scopes": scopes, **extra}, token
    )
    assert "errors" not in body, body
    return body["data"]["createApiKey"]  # type: ignore[no-any-return]


async def _set_expiry(runtime: Runtime, key_id: str, when: datetime) -> None:
    async with transaction(runtime.sessions) as session:
        await session.execute(
            update(ApiKey).where(ApiKey.id == uuid.UUID(key_id)).values(expires_at=when)
        )


async def test_a_key_is_shown_once_listed_without_its_secret_and_usable_at_once(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner, org = await _owner_and_org(api, runtime)
    expires = datetime.now(UTC) + timedelta(days=30)
    created = await _new_key(
        api, owner, org, ["VEHICLES_READ", "REPORTS_READ"], exp=expires.isoformat()
    )
    secret, key = created["secret"], created["apiKey"]
    assert secret.startswith(TEST_PREFIX) and well_formed(secret)
    assert key["prefix"] == secret[:SHOWN_CHARS]
    assert key["scopes"] == ["VEHICLES_READ", "REPORTS_READ"]
    assert datetime.fromisoformat(key["expiresAt"]) == expires
    assert key["lastUsedAt"] is None and key["revokedAt"] is None

    searched = await gql(api, VEHICLES, token=secret)
    assert searched == {"data": {"vehicles": []}}

    listing = await gql(api, LIST, {"org": org}, owner)
    assert "errors" not in listing, listing
    assert [k["id"] for k in listing["data"]["apiKeys"]] == [key["id"]]
    assert secret not in str(listing) and secret[SHOWN_CHARS:] not in str(listing)
    listed = listing["data"]["apiKeys"][0]
    # Its use is recorded (to the minute).
    used = datetime.fromisoformat(listed["lastUsedAt"])
    assert abs(used - datetime.now(UTC)) < timedelta(minutes=1)


async def test_searching_with_a_key_needs_the_vehicles_read_scope(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner, org = await _owner_and_org(api, runtime)
    reader = (await _new_key(api, owner, org, ["VEHICLES_READ"]))["secret"]
    booker = (await _new_key(api, owner, org, ["BOOKINGS_WRITE", "REPORTS_READ"]))["secret"]
    # Twice each: the second request of a document runs through its operation plan.
    for _ in range(2):
        for query in (VEHICLES, VEHICLE, TRIPS, QUOTE):
            refused = await gql(api, query, token=booker)
            assert codes(refused) == ["MISSING_SCOPE"], (query, refused)
        assert await gql(api, VEHICLES, token=reader) == {"data": {"vehicles": []}}
        assert await gql(api, VEHICLE, token=reader) == {"data": {"vehicle": None}}
        # No vehicle there: walking alone (1.3 km at 4.8 km/h, rounded up).
        assert await gql(api, TRIPS, token=reader) == {
            "data": {"tripOptions": [{"walkMinutes": WALK_MINUTES}]}
        }
        # Anonymous search is untouched.
        assert await gql(api, VEHICLES) == {"data": {"vehicles": []}}


async def test_a_revoked_key_is_refused_at_the_next_request(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner, org = await _owner_and_org(api, runtime)
    created = await _new_key(api, owner, org, ["VEHICLES_READ"])
    assert "errors" not in await gql(api, VEHICLES, token=created["secret"])
    revoked = await gql(api, REVOKE, {"id": created["apiKey"]["id"]}, owner)
    assert revoked["data"]["revokeApiKey"]["revokedAt"] is not None, revoked
    assert codes(await gql(api, VEHICLES, token=created["secret"])) == ["INVALID_API_KEY"]


async def test_an_expired_key_is_refused(api: httpx.AsyncClient, runtime: Runtime) -> None:
    owner, org = await _owner_and_org(api, runtime)
    created = await _new_key(api, owner, org, ["VEHICLES_READ"])
    assert "errors" not in await gql(api, VEHICLES, token=created["secret"])
    await _set_expiry(runtime, created["apiKey"]["id"], datetime.now(UTC) - timedelta(seconds=1))
    assert codes(await gql(api, VEHICLES, token=created["secret"])) == ["INVALID_API_KEY"]
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    refused = await gql(
        api, CREATE, {"org": org, "name": "x", "scopes": ["VEHICLES_READ"], "exp": past}, owner
    )
    assert codes(refused) == ["INVALID_EXPIRY"]


async def test_rotation_keeps_the_old_key_until_the_overlap_ends(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner, org = await _owner_and_org(api, runtime)
    old = await _new_key(api, owner, org, ["VEHICLES_READ"])
    before = datetime.now(UTC)
    rotated = await gql(api, ROTATE, {"id": old["apiKey"]["id"]}, owner)
    assert "errors" not in rotated, rotated
    new = rotated["data"]["rotateApiKey"]
    assert new["apiKey"]["scopes"] == ["VEHICLES_READ"] and new["apiKey"]["name"] == "dispatch"
    assert new["secret"] != old["secret"]
    # Both work during the overlap, whose end is 24 h (the default) after the rotation.
    for secret in (old["secret"], new["secret"]):
        assert "errors" not in await gql(api, VEHICLES, token=secret)
    listed = {k["id"]: k for k in (await gql(api, LIST, {"org": org}, owner))["data"]["apiKeys"]}
    old_expiry = datetime.fromisoformat(listed[old["apiKey"]["id"]]["expiresAt"])
    assert before + timedelta(hours=24) <= old_expiry <= datetime.now(UTC) + timedelta(hours=24)
    # The overlap over (moved into the past here rather than waited for): old refused, new not.
    await _set_expiry(runtime, old["apiKey"]["id"], datetime.now(UTC) - timedelta(seconds=1))
    assert codes(await gql(api, VEHICLES, token=old["secret"])) == ["INVALID_API_KEY"]
    assert "errors" not in await gql(api, VEHICLES, token=new["secret"])

    # overlapSeconds 0: the replaced key stops at once.
    again = await gql(api, ROTATE, {"id": new["apiKey"]["id"], "overlap": 0}, owner)
    assert "errors" not in again, again
    assert codes(await gql(api, VEHICLES, token=new["secret"])) == ["INVALID_API_KEY"]
    third = again["data"]["rotateApiKey"]["secret"]
    assert "errors" not in await gql(api, VEHICLES, token=third)
    too_long = await gql(api, ROTATE, {"id": new["apiKey"]["id"], "overlap": 8 * 86400}, owner)
    assert codes(too_long) == ["INVALID_OVERLAP"]


async def test_members_below_admin_are_forbidden_and_keys_cannot_manage_keys(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner, owner_id = await sign_up(api)
    booker, booker_id = await sign_up(api)
    rider, rider_id = await sign_up(api)
    admin_token, admin_id = await sign_up(api)
    org = await _organisation(
        runtime,
        {
            owner_id: Role.OWNER,
            booker_id: Role.BOOKER,
            rider_id: Role.RIDER,
            admin_id: Role.ADMIN,
        },
    )
    key = await _new_key(api, owner, org, ["VEHICLES_READ", "WEBHOOKS_MANAGE"])
    for token in (booker, rider, key["secret"]):
        create = {"org": org, "name": "mine", "scopes": ["VEHICLES_READ"]}
        assert codes(await gql(api, CREATE, create, token)) == ["FORBIDDEN"]
        assert codes(await gql(api, LIST, {"org": org}, token)) == ["FORBIDDEN"]
        assert codes(await gql(api, REVOKE, {"id": key["apiKey"]["id"]}, token)) == ["FORBIDDEN"]
        assert codes(await gql(api, ROTATE, {"id": key["apiKey"]["id"]}, token)) == ["FORBIDDEN"]
    # An ADMIN may, like the OWNER.
    assert "errors" not in await gql(api, LIST, {"org": org}, admin_token)
    revoked = await gql(api, REVOKE, {"id": key["apiKey"]["id"]}, admin_token)
    assert "errors" not in revoked, revoked
    # Without any credentials: who you are comes first, before any key id is looked at.
    assert codes(await gql(api, REVOKE, {"id": key["apiKey"]["id"]})) == ["UNAUTHENTICATED"]
    assert codes(await gql(api, REVOKE, {"id": str(uuid.uuid4())})) == ["UNAUTHENTICATED"]


async def test_another_organisation_gets_not_found_for_our_keys(
    api: httpx.AsyncClient, runtime: Runtime
) -> None:
    owner, org = await _owner_and_org(api, runtime)
    stranger, their_org = await _owner_and_org(api, runtime)
    ours = await _new_key(api, owner, org, ["VEHICLES_READ"])
    their_key = (await _new_key(api, stranger, their_org, ["VEHICLES_READ"]))["secret"]
    key_id = ours["apiKey"]["id"]
    for token in (stranger, their_key):
        assert codes(await gql(api, LIST, {"org": org}, token)) == ["NOT_FOUND"]
        create = {"org": org, "name": "x", "scopes": ["VEHICLES_READ"]}
        assert codes(await gql(api, CREATE, create, token)) == ["NOT_FOUND"]
        for mutation in (REVOKE, ROTATE):
            found = await gql(api, mutation, {"id": key_id}, token)
            missing = await gql(api, mutation, {"id": str(uuid.uuid4())}, token)
            # The same answer as for a key that does not exist, naming nothing of ours.
            assert codes(found) == codes(missing) == ["NOT_FOUND"]
            assert org not in str(found)
    assert "errors" not in await gql(api, VEHICLES, token=ours["secret"])  # untouched
