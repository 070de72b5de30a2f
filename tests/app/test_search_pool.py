"""The search pool skips asyncpg's reset query; what must still hold when a connection goes
back to the pool."""

from __future__ import annotations

import asyncpg

from app.platform.db import plain_url
from app.runtime import ReadOnlyConnection, Runtime


async def test_search_pool_connections_reset_no_session_state_but_end_transactions(
    runtime: Runtime,
) -> None:
    async with runtime.search.pool.acquire() as conn:
        assert isinstance(conn, ReadOnlyConnection)
        assert conn.get_reset_query() == ""
    # One connection only, so the second acquire gets the same backend back.
    url = plain_url(runtime.settings.database_url)
    async with asyncpg.create_pool(
        url, connection_class=ReadOnlyConnection, min_size=1, max_size=1
    ) as pool:
        async with pool.acquire() as conn:
            pid = conn.get_server_pid()
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE left_behind (x int)")
            assert conn.is_in_transaction()
        async with pool.acquire() as conn:
            assert conn.get_server_pid() == pid
            assert not conn.is_in_transaction()
            # The transaction was rolled back, not committed: its table is gone.
            assert await conn.fetchval("SELECT to_regclass('pg_temp.left_behind')") is None
