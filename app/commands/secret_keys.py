"""``mobility secrets reseal``: every stored secret sealed again with the first key of
``MOBILITY_SECRETS_KEYS`` (key rotation)."""

from __future__ import annotations

from app import secret_box
from app.commands.console import progress, say
from app.db import create_engine, session_factory, transaction
from app.settings import Settings

__all__ = ["reseal"]


async def reseal(settings: Settings) -> int:
    box = secret_box.configure(settings)
    say(f"re-sealing every stored secret with key {box.sealing_key_id}")
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            counts = await secret_box.reseal_all(session, box, progress("secrets"))
    finally:
        await engine.dispose()
    say(f"done: {sum(counts.values())} re-sealed; keys other than the first may now go")
    return 0
