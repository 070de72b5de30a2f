"""Organisations through the API: creation, cost centres, invitations, roles, and that nobody
outside an organisation learns anything about it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.booking_support import codes, gql, sign_up

CREATE = """mutation C($name: String!, $tz: String!) {
  createOrganisation(name: $name, timezone: $tz) { id name timezone myRole } }"""
ORG = """query O($id: ID!) { organisation(id: $id) { id name myRole costCentres { code }
  members { email role costCentreId } } }"""
ORG_PLAIN = (
    """query O($id: ID!) { organisation(id: $id) { id name myRole costCentres { code } } }"""
)
ADD_CENTRE = """mutation A($org: ID!, $code: String!, $name: String!) {
  addCostCentre(organisationId: $org, code: $code, name: $name) { id code name } }"""
INVITE = """mutation I($org: ID!, $email: String!, $role: OrganisationRole!, $cc: ID) {
  inviteMember(organisationId: $org, email: $email, role: $role, costCentreId: $cc) {
    token invitation { email role expiresAt } } }"""
ACCEPT = """mutation A($token: String!) { acceptInvitation(token: $token) { id myRole } }"""
UPDATE = """mutation U($org: ID!, $member: ID!, $role: OrganisationRole) {
  updateMember(organisationId: $org, memberId: $member, role: $role) { id role } }"""
MINE = "query { myOrganisations { id name myRole } }"
ME = "query { me { email } }"


async def _email(api: httpx.AsyncClient, token: str) -> str:
    return str((await gql(api, ME, {}, token))["data"]["me"]["email"])


async def _org(api: httpx.AsyncClient, token: str, name: str = "Acme GmbH") -> str:
    body = await gql(api, CREATE, {"name": name, "tz": "Europe/Berlin"}, token)
    assert "errors" not in body, body
    assert body["data"]["createOrganisation"]["myRole"] == "OWNER"
    return str(body["data"]["createOrganisation"]["id"])


async def _join(
    api: httpx.AsyncClient, owner: str, org: str, role: str, cc: str | None = None
) -> tuple[str, str]:
    """A new rider invited with ``role`` who accepts: (their token, their member id)."""
    token, _ = await sign_up(api)
    invited = await gql(
        api,
        INVITE,
        {"org": org, "email": await _email(api, token), "role": role, "cc": cc},
        owner,
    )
    assert "errors" not in invited, invited
    accepted = await gql(api, ACCEPT, {"token": invited["data"]["inviteMember"]["token"]}, token)
    assert accepted["data"]["acceptInvitation"]["myRole"] == role, accepted
    members = (await gql(api, ORG, {"id": org}, owner))["data"]["organisation"]["members"]
    email = await _email(api, token)
    body = await gql(
        api,
        "query($id: ID!) { organisation(id: $id) { members { id email } } }",
        {"id": org},
        owner,
    )
    member_id = next(
        m["id"] for m in body["data"]["organisation"]["members"] if m["email"] == email
    )
    assert any(m["email"] == email for m in members)
    return token, member_id


async def test_an_organisation_with_cost_centres_and_invited_members(
    api: httpx.AsyncClient,
) -> None:
    owner, _ = await sign_up(api)
    org = await _org(api, owner)
    centre = await gql(api, ADD_CENTRE, {"org": org, "code": "SALES", "name": "Sales"}, owner)
    cc = centre["data"]["addCostCentre"]["id"]
    duplicate = await gql(api, ADD_CENTRE, {"org": org, "code": "SALES", "name": "x"}, owner)
    assert codes(duplicate) == ["COST_CENTRE_EXISTS"]

    rider_token, _ = await _join(api, owner, org, "RIDER", cc)
    seen = (await gql(api, ORG, {"id": org}, owner))["data"]["organisation"]
    roles = {m["email"]: (m["role"], m["costCentreId"]) for m in seen["members"]}
    assert roles[await _email(api, rider_token)] == ("RIDER", cc)
    assert roles[await _email(api, owner)] == ("OWNER", None)
    mine = (await gql(api, MINE, {}, rider_token))["data"]["myOrganisations"]
    assert mine == [{"id": org, "name": "Acme GmbH", "myRole": "RIDER"}]
    # A RIDER sees the organisation, not its members.
    as_rider = await gql(api, ORG_PLAIN, {"id": org}, rider_token)
    assert as_rider["data"]["organisation"]["costCentres"] == [{"code": "SALES"}]
    members = await gql(api, ORG, {"id": org}, rider_token)
    assert codes(members) == ["FORBIDDEN"]


async def test_an_invitation_is_for_its_email_once_and_not_after_it_expired(
    api: httpx.AsyncClient,
) -> None:
    owner, _ = await sign_up(api)
    org = await _org(api, owner)
    invitee, _ = await sign_up(api)
    someone_else, _ = await sign_up(api)
    invited = await gql(
        api,
        INVITE,
        {"org": org, "email": (await _email(api, invitee)).upper(), "role": "BOOKER"},
        owner,
    )
    token = invited["data"]["inviteMember"]["token"]
    assert codes(await gql(api, ACCEPT, {"token": token}, someone_else)) == ["INVITATION_INVALID"]
    assert codes(await gql(api, ACCEPT, {"token": "mob_inv_guess"}, invitee)) == [
        "INVITATION_INVALID"
    ]
    joined = await gql(api, ACCEPT, {"token": token}, invitee)
    assert joined["data"]["acceptInvitation"]["myRole"] == "BOOKER"
    assert codes(await gql(api, ACCEPT, {"token": token}, invitee)) == ["INVITATION_INVALID"]


async def test_roles_owner_rules_and_the_last_owner(api: httpx.AsyncClient) -> None:
    owner, _ = await sign_up(api)
    org = await _org(api, owner)
    admin, admin_member = await _join(api, owner, org, "ADMIN")
    booker, booker_member = await _join(api, owner, org, "BOOKER")
    # An ADMIN cannot make owners; an OWNER can; the last OWNER cannot step down.
    made = await gql(api, UPDATE, {"org": org, "member": booker_member, "role": "OWNER"}, admin)
    assert codes(made) == ["FORBIDDEN"]
    body = await gql(
        api, "query($id: ID!) { organisation(id: $id) { members { id role } } }", {"id": org}, owner
    )
    owner_member = next(
        m["id"] for m in body["data"]["organisation"]["members"] if m["role"] == "OWNER"
    )
    alone = await gql(api, UPDATE, {"org": org, "member": owner_member, "role": "ADMIN"}, owner)
    assert codes(alone) == ["LAST_OWNER"]
    promoted = await gql(api, UPDATE, {"org": org, "member": admin_member, "role": "OWNER"}, owner)
    assert promoted["data"]["updateMember"]["role"] == "OWNER"
    stepped = await gql(api, UPDATE, {"org": org, "member": owner_member, "role": "ADMIN"}, owner)
    assert stepped["data"]["updateMember"]["role"] == "ADMIN"
    # A BOOKER manages nothing.
    centre = await gql(api, ADD_CENTRE, {"org": org, "code": "X", "name": "X"}, booker)
    assert codes(centre) == ["FORBIDDEN"]


async def test_outsiders_learn_nothing_about_an_organisation(api: httpx.AsyncClient) -> None:
    owner, _ = await sign_up(api)
    org = await _org(api, owner)
    cc = (await gql(api, ADD_CENTRE, {"org": org, "code": "OPS", "name": "Ops"}, owner))["data"][
        "addCostCentre"
    ]["id"]
    _, member = await _join(api, owner, org, "RIDER")
    outsider, _ = await sign_up(api)
    other_org = await _org(api, outsider, "Other Ltd")
    attempts: list[tuple[str, dict[str, Any]]] = [
        (ORG_PLAIN, {"id": org}),
        (ADD_CENTRE, {"org": org, "code": "Y", "name": "Y"}),
        (INVITE, {"org": org, "email": "x@example.org", "role": "RIDER"}),
        (UPDATE, {"org": org, "member": member, "role": "ADMIN"}),
        # Our member's id through the outsider's own organisation.
        (UPDATE, {"org": other_org, "member": member, "role": "ADMIN"}),
        (INVITE, {"org": other_org, "email": "x@example.org", "role": "RIDER", "cc": cc}),
    ]
    for query, variables in attempts:
        body = await gql(api, query, variables, outsider)
        assert codes(body) == ["NOT_FOUND"], (query, body)
    unknown = await gql(api, ORG_PLAIN, {"id": str(uuid.uuid4())}, outsider)
    ours = await gql(api, ORG_PLAIN, {"id": org}, outsider)
    assert codes(unknown) == codes(ours) == ["NOT_FOUND"]
    assert codes(await gql(api, ORG_PLAIN, {"id": "not-a-uuid"}, outsider)) == ["NOT_FOUND"]
    assert codes(await gql(api, ORG_PLAIN, {"id": org})) == ["UNAUTHENTICATED"]
