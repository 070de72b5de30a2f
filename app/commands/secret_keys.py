"""``mobility secrets reseal``: every stored secret sealed again with the first key of
``MOBILITY_SECRETS_KEYS`` (key rotation)."""

from __future__ import annotations

from app.commands.console import progress, say
from app.commands.database import database
from app.platform import secret_box
from app.platform.db import transaction
from app.platform.settings import Settings

__all__ = ["reseal"]


async def reseal(settings: Settings) -> int:
    box = secret_box.configure(settings)
    say(f"re-sealing every stored secret with key {box.sealing_key_id}")
    async with database(settings) as sessions, transaction(sessions) as session:
        counts = await secret_box.reseal_all(session, box, progress("secrets"))
    say(f"done: {sum(counts.values())} re-sealed; keys other than the first may now go")
    return 0
