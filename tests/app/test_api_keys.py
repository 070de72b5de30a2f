"""API key management (app/fleet/api_key_admin.py) against the real database: the secret shown
once and stored as a hash, who may manage keys, revocation, expiry, rotation with an overlap."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from app.fleet import api_key_admin as admin
from app.fleet.api_keys import (
    LIVE_PREFIX,
    SHOWN_CHARS,
    TEST_PREFIX,
    InvalidApiKey,
    verify_api_key,
    well_formed,
)
from app.fleet.principal import OrgActor, OrgNotFound, Role, Scope
from app.models import ApiKey, Organisation, OrganisationMember, User
from app.platform.db import transaction
from app.platform.errors import DomainError
from app.runtime import Runtime
from app.staff_auth import Forbidden

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


async def _org(runtime: Runtime, *roles: Role, plan: str = "STANDARD") -> list[OrgActor]:
    """A new organisation with one member per role: their actors, in the order given."""
    async with transaction(runtime.sessions) as session:
        org = Organisation(name=f"org-{uuid.uuid4().hex[:6]}", plan=plan)
        session.add(org)
        await session.flush()
        actors = []
        for role in roles:
            user = User(email=f"{role.value.lower()}-{uuid.uuid4().hex[:8]}@example.org")
            session.add(user)
            await session.flush()
            session.add(OrganisationMember(organisation_id=org.id, user_id=user.id, role=role))
            actors.append(OrgActor(org.id, user_id=user.id, role=role))
    return actors


async def _create(
    runtime: Runtime,
    actor: OrgActor,
    *,
    scopes: list[Scope] | None = None,
    expires_at: datetime | None = None,
    live: bool = False,
    name: str = "dispatch system",
) -> tuple[ApiKey, str]:
    async with transaction(runtime.sessions) as session:
        return await admin.create_api_key(
            session,
            actor,
            name=name,
            scopes=scopes if scopes is not None else [Scope.VEHICLES_READ],
            expires_at=expires_at,
            live=live,
            now=T0,
        )


async def _verify(runtime: Runtime, secret: str, now: datetime) -> None:
    async with transaction(runtime.sessions) as session:
        await verify_api_key(session, secret, now)


async def test_a_new_key_is_shown_once_and_only_its_hash_and_prefix_are_stored(
    runtime: Runtime,
) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    row, secret = await _create(runtime, owner, scopes=[Scope.BOOKINGS_WRITE, Scope.VEHICLES_READ])

    assert secret.startswith(TEST_PREFIX)
    assert well_formed(secret)
    # One character changed: the checksum no longer matches, refused without a lookup.
    tampered = secret[:20] + ("A" if secret[20] != "A" else "B") + secret[21:]
    assert not well_formed(tampered)
    assert row.prefix == secret[:SHOWN_CHARS]
    async with runtime.sessions() as session:
        stored = (await session.execute(select(ApiKey).where(ApiKey.id == row.id))).scalar_one()
        whole_row = (
            await session.execute(
                text("SELECT row_to_json(k)::text FROM api_keys k WHERE id = :id"), {"id": row.id}
            )
        ).scalar_one()
    assert stored.key_hash == hashlib.sha256(secret.encode()).digest()
    assert secret not in whole_row and secret[SHOWN_CHARS:] not in whole_row
    # Stored in the enum's order, whatever the order given.
    assert stored.scopes == [Scope.VEHICLES_READ.value, Scope.BOOKINGS_WRITE.value]
    assert stored.created_by == owner.user_id

    async with transaction(runtime.sessions) as session:
        principal = await verify_api_key(session, secret, T0)
    assert principal.key_id == row.id
    assert principal.organisation_id == owner.organisation_id
    assert principal.scopes == {Scope.VEHICLES_READ, Scope.BOOKINGS_WRITE}
    with pytest.raises(InvalidApiKey):
        await _verify(runtime, tampered, T0)


async def test_live_keys_carry_the_live_prefix(runtime: Runtime) -> None:
    (admin_actor,) = await _org(runtime, Role.ADMIN)
    _, secret = await _create(runtime, admin_actor, live=True)
    assert secret.startswith(LIVE_PREFIX) and well_formed(secret)


@pytest.mark.parametrize(
    ("name", "scopes", "expires_at", "code"),
    [
        ("", ["vehicles:read"], None, "INVALID_NAME"),
        ("   ", ["vehicles:read"], None, "INVALID_NAME"),
        ("x" * (admin.MAX_NAME_LENGTH + 1), ["vehicles:read"], None, "INVALID_NAME"),
        ("ok", [], None, "INVALID_SCOPES"),
        ("ok", ["vehicles:read", "admin:all"], None, "INVALID_SCOPES"),
        ("ok", ["vehicles:read"], T0, "INVALID_EXPIRY"),
        ("ok", ["vehicles:read"], T0 - timedelta(days=1), "INVALID_EXPIRY"),
        ("ok", ["vehicles:read"], datetime(2031, 1, 1), "INVALID_EXPIRY"),  # naive
    ],
)
async def test_invalid_key_requests_are_refused(
    runtime: Runtime, name: str, scopes: list[str], expires_at: datetime | None, code: str
) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    with pytest.raises(DomainError) as refused:
        async with transaction(runtime.sessions) as session:
            await admin.create_api_key(
                session, owner, name=name, scopes=scopes, expires_at=expires_at, live=False, now=T0
            )
    assert refused.value.code == code
    async with runtime.sessions() as session:
        assert (await session.execute(select(ApiKey))).first() is None


async def test_the_longest_name_and_a_future_expiry_are_accepted(runtime: Runtime) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    name = "n" * admin.MAX_NAME_LENGTH
    row, _ = await _create(runtime, owner, name=name, expires_at=T0 + timedelta(seconds=1))
    assert (row.name, row.expires_at) == (name, T0 + timedelta(seconds=1))


async def test_only_owners_and_admins_manage_keys_and_never_a_key(runtime: Runtime) -> None:
    owner, booker, rider = await _org(runtime, Role.OWNER, Role.BOOKER, Role.RIDER)
    row, secret = await _create(runtime, owner)
    async with transaction(runtime.sessions) as session:
        principal = await verify_api_key(session, secret, T0)
    as_key = OrgActor(owner.organisation_id, api_key=principal)
    for actor in (booker, rider, as_key):
        with pytest.raises(Forbidden):
            await _create(runtime, actor)
        async with transaction(runtime.sessions) as session:
            with pytest.raises(Forbidden):
                await admin.list_api_keys(session, actor)
            with pytest.raises(Forbidden):
                await admin.revoke_api_key(session, actor, row.id, now=T0)
            with pytest.raises(Forbidden):
                await admin.rotate_api_key(session, actor, row.id, 0, now=T0)
    async with runtime.sessions() as session:
        assert [k.id for k in await admin.list_api_keys(session, owner)] == [row.id]


async def test_a_revoked_key_is_refused_at_the_next_check(runtime: Runtime) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    row, secret = await _create(runtime, owner)
    await _verify(runtime, secret, T0)
    revoked_at = T0 + timedelta(minutes=5)
    async with transaction(runtime.sessions) as session:
        revoked = await admin.revoke_api_key(session, owner, row.id, now=revoked_at)
    assert revoked.revoked_at == revoked_at
    with pytest.raises(InvalidApiKey, match="revoked"):
        await _verify(runtime, secret, revoked_at)
    # Revoking again keeps the first time.
    async with transaction(runtime.sessions) as session:
        again = await admin.revoke_api_key(session, owner, row.id, now=revoked_at + timedelta(1))
    assert again.revoked_at == revoked_at


async def test_an_expired_key_is_refused(runtime: Runtime) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    expiry = T0 + timedelta(hours=1)
    _, secret = await _create(runtime, owner, expires_at=expiry)
    await _verify(runtime, secret, expiry - timedelta(seconds=1))
    with pytest.raises(InvalidApiKey, match="expired"):
        await _verify(runtime, secret, expiry)


async def test_rotation_keeps_the_old_key_working_until_the_overlap_ends(runtime: Runtime) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    old, old_secret = await _create(runtime, owner, scopes=[Scope.REPORTS_READ])
    rotated_at = T0 + timedelta(days=2)
    overlap = 3600
    async with transaction(runtime.sessions) as session:
        new, new_secret = await admin.rotate_api_key(
            session, owner, old.id, overlap, now=rotated_at
        )
    assert new_secret != old_secret and new.id != old.id
    assert (new.name, new.scopes, new.expires_at) == (old.name, old.scopes, None)
    async with runtime.sessions() as session:
        stored_old = await session.get(ApiKey, old.id)
    assert stored_old is not None
    assert stored_old.replaced_by == new.id
    assert stored_old.expires_at == rotated_at + timedelta(seconds=overlap)

    end = rotated_at + timedelta(seconds=overlap)
    await _verify(runtime, old_secret, end - timedelta(seconds=1))
    with pytest.raises(InvalidApiKey, match="expired"):
        await _verify(runtime, old_secret, end)
    await _verify(runtime, new_secret, end + timedelta(days=30))

    # The replacement, not the rotated key, is what to rotate next.
    async with transaction(runtime.sessions) as session:
        with pytest.raises(DomainError) as refused:
            await admin.rotate_api_key(session, owner, old.id, 0, now=rotated_at)
    assert refused.value.code == "API_KEY_REPLACED"


async def test_rotation_never_extends_the_old_key_and_carries_the_lifetime(
    runtime: Runtime,
) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    lifetime = timedelta(days=90)
    old, _ = await _create(runtime, owner, expires_at=T0 + lifetime, live=True)
    rotated_at = T0 + lifetime - timedelta(minutes=10)
    async with transaction(runtime.sessions) as session:
        new, secret = await admin.rotate_api_key(
            session, owner, old.id, admin.MAX_OVERLAP_SECONDS, now=rotated_at
        )
    async with runtime.sessions() as session:
        stored_old = await session.get(ApiKey, old.id)
    assert stored_old is not None
    assert stored_old.expires_at == T0 + lifetime  # min(existing, now + 7 days)
    assert new.expires_at == rotated_at + lifetime
    assert secret.startswith(LIVE_PREFIX)  # as the rotated key was


async def test_rotation_with_no_overlap_stops_the_old_key_now(runtime: Runtime) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    old, old_secret = await _create(runtime, owner)
    async with transaction(runtime.sessions) as session:
        _, new_secret = await admin.rotate_api_key(session, owner, old.id, 0, now=T0)
    with pytest.raises(InvalidApiKey):
        await _verify(runtime, old_secret, T0)
    await _verify(runtime, new_secret, T0)


@pytest.mark.parametrize("overlap", [-1, admin.MAX_OVERLAP_SECONDS + 1])
async def test_overlap_outside_zero_to_seven_days_is_refused(
    runtime: Runtime, overlap: int
) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    old, _ = await _create(runtime, owner)
    async with transaction(runtime.sessions) as session:
        with pytest.raises(DomainError) as refused:
            await admin.rotate_api_key(session, owner, old.id, overlap, now=T0)
    assert refused.value.code == "INVALID_OVERLAP"


async def test_revoked_or_expired_keys_cannot_be_rotated(runtime: Runtime) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    revoked, _ = await _create(runtime, owner)
    expiring, _ = await _create(runtime, owner, expires_at=T0 + timedelta(hours=1))
    async with transaction(runtime.sessions) as session:
        await admin.revoke_api_key(session, owner, revoked.id, now=T0)
    for key, now, code in (
        (revoked, T0, "API_KEY_REVOKED"),
        (expiring, T0 + timedelta(hours=1), "API_KEY_EXPIRED"),
    ):
        async with transaction(runtime.sessions) as session:
            with pytest.raises(DomainError) as refused:
                await admin.rotate_api_key(session, owner, key.id, 60, now=now)
        assert refused.value.code == code


async def test_last_used_at_is_written_at_most_once_a_minute(runtime: Runtime) -> None:
    (owner,) = await _org(runtime, Role.OWNER)
    row, secret = await _create(runtime, owner)

    async def last_used() -> datetime | None:
        async with runtime.sessions() as session:
            stored = await session.get(ApiKey, row.id)
            assert stored is not None
            return stored.last_used_at

    assert await last_used() is None
    await _verify(runtime, secret, T0)
    assert await last_used() == T0
    await _verify(runtime, secret, T0 + timedelta(seconds=59))
    assert await last_used() == T0
    await _verify(runtime, secret, T0 + timedelta(seconds=60))
    assert await last_used() == T0 + timedelta(seconds=60)


async def test_another_organisations_admin_finds_none_of_our_keys(runtime: Runtime) -> None:
    (ours,) = await _org(runtime, Role.OWNER)
    (theirs,) = await _org(runtime, Role.OWNER)
    row, secret = await _create(runtime, ours)
    async with transaction(runtime.sessions) as session:
        assert await admin.list_api_keys(session, theirs) == []
        with pytest.raises(OrgNotFound):
            await admin.revoke_api_key(session, theirs, row.id, now=T0)
        with pytest.raises(OrgNotFound):
            await admin.rotate_api_key(session, theirs, row.id, 0, now=T0)
        with pytest.raises(OrgNotFound):
            await admin.revoke_api_key(session, theirs, uuid.uuid4(), now=T0)
    await _verify(runtime, secret, T0)  # untouched
