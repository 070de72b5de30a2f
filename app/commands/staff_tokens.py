"""``mobility staff-token create | revoke | list``: the staff API tokens (the ADMIN role)."""

from __future__ import annotations

import argparse

from sqlalchemy import select

from app.commands.console import fail, say
from app.commands.database import database
from app.models import StaffToken
from app.platform.db import transaction
from app.platform.settings import Settings
from app.staff_auth import create_token, revoke_token

__all__ = ["run"]


async def run(settings: Settings, args: argparse.Namespace) -> int:
    async with database(settings) as sessions:
        if args.token_command == "create":
            async with transaction(sessions) as session:
                row, token = await create_token(session, args.name)
            say(f"staff token {row.id} ({row.name}, role {row.role}); it is shown once:")
            say(f"  {token}")
            say("use it as: Authorization: Bearer <token>")
            return 0
        if args.token_command == "revoke":
            async with transaction(sessions) as session:
                revoked = await revoke_token(session, args.id)
            if not revoked:
                return fail(f"no active staff token {args.id}", 1)
            say(f"staff token {args.id} revoked")
            return 0
        async with sessions() as session:
            rows = (await session.scalars(select(StaffToken).order_by(StaffToken.id))).all()
        if not rows:
            say("no staff tokens: create one with `mobility staff-token create NAME`")
        for t in rows:
            state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
            used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
            say(f"{t.id:>4}  {t.prefix}…  {t.name:<24} {t.role:<6} {state:<18} used {used}")
        return 0
