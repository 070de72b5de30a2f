"""Rider accounts through the real app over ASGI: sign-up, login, `me`, refresh, licence."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app import accounts
from app.main import create_app
from app.platform.db import transaction
from app.runtime import Runtime
from app.staff_auth import create_token
from graphql_schema.context import Context
from tests.app.test_accounts import IdentityProvider, idp  # noqa: F401  (fixture)
from tests.conftest import make_settings

SESSION_FIELDS = """
  accessToken accessTokenExpiresAt refreshToken refreshTokenExpiresAt
  rider { id email displayName birthDate licenceStatus }
"""
SIGN_UP = (
    f"mutation SignUp($input: SignUpInput!) {{ signUp(input: $input) {{ {SESSION_FIELDS} }} }}"
)
LOG_IN = f"""mutation LogIn($email: String!, $password: String!) {{
  logIn(email: $email, password: $password) {{ {SESSION_FIELDS} }}
}}"""
REFRESH = f"""mutation Refresh($token: String!) {{
  refreshSession(refreshToken: $token) {{ {SESSION_FIELDS} }}
}}"""
LOG_OUT = "mutation LogOut($token: String!) { logOut(refreshToken: $token) }"
ME = "{ me { id email displayName birthDate licenceStatus } }"
SET_LICENCE = """mutation SetLicence($userId: ID!, $status: LicenceStatus!) {
  setLicenceStatus(userId: $userId, status: $status) { id licenceStatus }
}"""
PASSWORD = "correct horse battery"
ADA = {
    "email": "Ada@Example.com",
    "password": PASSWORD,
    "birthDate": "1990-05-17",
    "displayName": "Ada",
}


async def gql(
    api: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str = "",
    authorization: str | None = None,
) -> dict[str, Any]:
    headers = (
        {"Authorization": authorization or f"Bearer {token}"} if token or authorization else {}
    )
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def signed_up(api: httpx.AsyncClient, **changes: Any) -> dict[str, Any]:
    body = await gql(api, SIGN_UP, {"input": {**ADA, **changes}})
    assert "errors" not in body, body
    return body["data"]["signUp"]  # type: ignore[no-any-return]


async def staff_token(runtime: Runtime) -> str:
    async with transaction(runtime.sessions) as session:
        _, token = await create_token(session, "licence desk")
    return token


async def test_sign_up_log_in_and_me(runtime: Runtime, api: httpx.AsyncClient) -> None:
    session = await signed_up(api)
    expected_rider = {
        "id": session["rider"]["id"],
        "email": ADA["email"],
        "displayName": ADA["displayName"],
        "birthDate": ADA["birthDate"],
        "licenceStatus": "UNVERIFIED",
    }
    assert session["rider"] == expected_rider
    uuid.UUID(session["rider"]["id"])
    issued = datetime.fromisoformat(session["accessTokenExpiresAt"])
    ttl = runtime.settings.access_token_ttl_seconds
    assert abs((issued - datetime.now(UTC)).total_seconds() - ttl) < 60
    assert session["refreshToken"].startswith("mob_rt_")

    me = await gql(api, ME, token=session["accessToken"])
    assert me == {"data": {"me": expected_rider}}

    body = await gql(api, LOG_IN, {"email": "ada@example.COM", "password": PASSWORD})
    logged_in = body["data"]["logIn"]
    assert logged_in["rider"] == expected_rider
    assert logged_in["refreshToken"] != session["refreshToken"]
    assert await gql(api, ME, token=logged_in["accessToken"]) == {"data": {"me": expected_rider}}


async def test_me_is_null_for_anonymous_and_for_staff(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    assert await gql(api, ME) == {"data": {"me": None}}
    assert await gql(api, ME, token=await staff_token(runtime)) == {"data": {"me": None}}


async def test_duplicate_email_in_another_case_is_email_taken(api: httpx.AsyncClient) -> None:
    await signed_up(api)
    body = await gql(api, SIGN_UP, {"input": {**ADA, "email": "ADA@example.com"}})
    assert codes(body) == ["EMAIL_TAKEN"]
    assert body["data"] is None


async def test_bad_sign_up_input_has_a_code(api: httpx.AsyncClient) -> None:
    for changes, code in [
        ({"email": "nope"}, "INVALID_EMAIL"),
        ({"password": "short"}, "INVALID_PASSWORD"),
        ({"birthDate": (datetime.now(UTC) + timedelta(days=2)).date().isoformat()}, None),
    ]:
        body = await gql(api, SIGN_UP, {"input": {**ADA, **changes}})
        assert codes(body) == [code or "INVALID_BIRTH_DATE"], body


async def test_wrong_password_and_unknown_email_give_the_same_error(
    api: httpx.AsyncClient,
) -> None:
    await signed_up(api)
    wrong_password = await gql(api, LOG_IN, {"email": ADA["email"], "password": "not it at all"})
    unknown_email = await gql(api, LOG_IN, {"email": "who@example.com", "password": PASSWORD})
    assert codes(wrong_password) == codes(unknown_email) == ["INVALID_CREDENTIALS"]
    assert wrong_password["errors"][0]["message"] == unknown_email["errors"][0]["message"]


async def test_refresh_rotates_and_reuse_revokes_the_family(api: httpx.AsyncClient) -> None:
    first = await signed_up(api)
    body = await gql(api, REFRESH, {"token": first["refreshToken"]})
    second = body["data"]["refreshSession"]
    assert second["refreshToken"] != first["refreshToken"]
    assert second["rider"] == first["rider"]
    assert (await gql(api, ME, token=second["accessToken"]))["data"]["me"]["id"] == (
        first["rider"]["id"]
    )

    reused = await gql(api, REFRESH, {"token": first["refreshToken"]})
    assert codes(reused) == ["REFRESH_TOKEN_REUSED"]
    # The successor went with the family.
    assert codes(await gql(api, REFRESH, {"token": second["refreshToken"]})) == [
        "REFRESH_TOKEN_REVOKED"
    ]


async def test_concurrent_refreshes_with_one_token_let_exactly_one_succeed(
    api: httpx.AsyncClient,
) -> None:
    session = await signed_up(api)
    bodies = await asyncio.gather(
        *(gql(api, REFRESH, {"token": session["refreshToken"]}) for _ in range(3))
    )
    succeeded = [b for b in bodies if "errors" not in b]
    assert len(succeeded) == 1, bodies
    assert sorted(c for b in bodies for c in codes(b)) == ["REFRESH_TOKEN_REUSED"] * 2


async def test_log_out_ends_the_session(api: httpx.AsyncClient) -> None:
    session = await signed_up(api)
    assert await gql(api, LOG_OUT, {"token": session["refreshToken"]}) == {"data": {"logOut": True}}
    assert codes(await gql(api, REFRESH, {"token": session["refreshToken"]})) == [
        "REFRESH_TOKEN_REVOKED"
    ]
    assert await gql(api, LOG_OUT, {"token": session["refreshToken"]}) == {
        "data": {"logOut": False}
    }


async def test_expired_access_token_is_token_expired(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    session = await signed_up(api)
    ttl = runtime.settings.access_token_ttl_seconds
    expired = accounts.issue_access_token(
        runtime.settings,
        uuid.UUID(session["rider"]["id"]),
        now=datetime.now(UTC) - timedelta(seconds=ttl + 10),
    )
    body = await gql(api, ME, token=expired.token)
    assert codes(body) == ["TOKEN_EXPIRED"]
    assert body["data"] == {"me": None}


async def test_tampered_or_unknown_tokens_are_invalid_but_search_ignores_them(
    api: httpx.AsyncClient,
) -> None:
    session = await signed_up(api)
    header, payload, signature = session["accessToken"].split(".")
    flipped = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    for authorization in [
        f"Bearer {header}.{payload}.{flipped}",
        "Bearer not-a-token",
        f"Basic {session['accessToken']}",
    ]:
        body = await gql(api, ME, authorization=authorization)
        assert codes(body) == ["INVALID_TOKEN"], authorization
        # Fields that do not need the rider do not read the token at all.
        providers = await gql(api, "{ providers { id } }", authorization=authorization)
        assert providers == {"data": {"providers": []}}


async def test_staff_set_licence_status_and_riders_cannot(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    session = await signed_up(api)
    rider_id = session["rider"]["id"]
    staff = await staff_token(runtime)
    variables = {"userId": rider_id, "status": "VERIFIED"}

    for token in [session["accessToken"], ""]:
        body = await gql(api, SET_LICENCE, variables, token=token)
        assert codes(body) == ["FORBIDDEN"]
    assert (await gql(api, ME, token=session["accessToken"]))["data"]["me"]["licenceStatus"] == (
        "UNVERIFIED"
    )

    body = await gql(api, SET_LICENCE, variables, token=staff)
    assert body == {"data": {"setLicenceStatus": {"id": rider_id, "licenceStatus": "VERIFIED"}}}
    # The rider's next request sees it, with the access token they already had.
    assert (await gql(api, ME, token=session["accessToken"]))["data"]["me"]["licenceStatus"] == (
        "VERIFIED"
    )

    for user_id in [str(uuid.uuid4()), "not-a-uuid"]:
        body = await gql(api, SET_LICENCE, {"userId": user_id, "status": "REJECTED"}, staff)
        assert codes(body) == ["USER_NOT_FOUND"]


async def test_external_identity_provider_token_signs_the_rider_in(
    runtime: Runtime,
    idp: IdentityProvider,  # noqa: F811
) -> None:
    # The same runtime (database, Redis) under settings that trust the provider.
    trusting = runtime.with_settings(idp.settings())
    app = create_app(trusting.settings)
    app.state.runtime = trusting
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        body = await gql(client, ME, token=idp.token())
        assert body["data"]["me"]["email"] == "grace@idp.example.com"
        assert body["data"]["me"]["licenceStatus"] == "UNVERIFIED"
        assert codes(await gql(client, ME, token=idp.token(aud="someone-else"))) == [
            "INVALID_TOKEN"
        ]
        # Our own tokens keep working beside the provider's.
        ours = await signed_up(client)
        assert (await gql(client, ME, token=ours["accessToken"]))["data"]["me"]["email"] == (
            ADA["email"]
        )


async def test_a_deployment_can_sign_riders_in_through_its_identity_provider_only(
    runtime: Runtime,
    api: httpx.AsyncClient,
    idp: IdentityProvider,  # noqa: F811
) -> None:
    # A password account made while the deployment still had them, with a live session.
    before = await signed_up(api)
    only_idp = runtime.with_settings(idp.settings(password_accounts=False))
    app = create_app(only_idp.settings)
    app.state.runtime = only_idp
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        body = await gql(client, ME, token=idp.token())
        assert body["data"]["me"]["email"] == "grace@idp.example.com", body
        refused = [
            await gql(client, SIGN_UP, {"input": {**ADA, "email": "new@example.com"}}),
            await gql(client, LOG_IN, {"email": ADA["email"], "password": ADA["password"]}),
            await gql(client, REFRESH, {"token": before["refreshToken"]}),
        ]
        assert [codes(b) for b in refused] == [["PASSWORD_ACCOUNTS_DISABLED"]] * 3, refused
        # Our own access tokens, even unexpired ones, are not accepted any more.
        assert codes(await gql(client, ME, token=before["accessToken"])) == ["INVALID_TOKEN"]
    # Turning password accounts off without a provider would lock everyone out: refused.
    with pytest.raises(accounts.AccountsMisconfigured, match="identity provider"):
        accounts.check_settings(make_settings(password_accounts=False))


# --- the context ---------------------------------------------------------------------------


def _context(runtime: Runtime, authorization: str | None) -> Context:
    return Context.of(runtime, authorization=authorization)


async def test_require_rider_answers_unauthenticated_without_a_rider_token(
    runtime: Runtime, api: httpx.AsyncClient
) -> None:
    staff = await staff_token(runtime)
    for authorization in [None, "", f"Bearer {staff}"]:
        with pytest.raises(accounts.Unauthenticated) as caught:
            await _context(runtime, authorization).require_rider()
        assert caught.value.code == "UNAUTHENTICATED", authorization
    # Staff keep their role; a rider is not staff.
    assert (await _context(runtime, f"Bearer {staff}").viewer()).is_admin
    session = await signed_up(api)
    rider_context = _context(runtime, f"Bearer {session['accessToken']}")
    assert not (await rider_context.viewer()).is_admin
    assert (await rider_context.require_rider()).email == ADA["email"]
    with pytest.raises(accounts.InvalidToken):
        await _context(runtime, "Bearer junk").require_rider()


async def test_the_rider_is_looked_up_once_per_request(
    runtime: Runtime, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = await signed_up(api)
    calls: list[str] = []
    real = accounts.rider_for_token

    async def counting(*args: Any) -> accounts.Rider:
        calls.append("lookup")
        return await real(*args)

    monkeypatch.setattr("app.identity.rider_for_token", counting)
    context = _context(runtime, f"Bearer {session['accessToken']}")
    riders = await asyncio.gather(*(context.require_rider() for _ in range(5)))
    assert len({r.id for r in riders}) == 1
    assert calls == ["lookup"]
    bad = _context(runtime, "Bearer a.b.c")
    for _ in range(3):
        with pytest.raises(accounts.InvalidToken):
            await bad.rider()
    assert calls == ["lookup", "lookup"]
