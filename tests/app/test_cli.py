"""The `mobility` command, run as a real process against the test database and feed server."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import orjson

from app.platform import secret_box
from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.helpers import feed_dir, raw

MOBILITY = str(Path(sys.executable).with_name("mobility"))


async def mobility(
    runtime: Runtime, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    environment = {
        **os.environ,
        "MOBILITY_DATABASE_URL": runtime.settings.database_url,
        "MOBILITY_REDIS_URL": runtime.settings.redis_url,
        "MOBILITY_REDIS_PREFIX": runtime.settings.redis_prefix,
        **(env or {}),
    }
    process = await asyncio.create_subprocess_exec(
        MOBILITY,
        *args,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_add_sync_and_list_a_provider_from_the_command_line(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    paths = server.add_directory("lillestrom", feed_dir("lillestrom-bysykkel"))
    feeds = [f"--feed={Path(p).stem}={base_url}{p}" for p in paths if Path(p).stem != "gbfs"]
    stations = len(raw("lillestrom-bysykkel", "station_information")["data"]["stations"])

    code, out, err = await mobility(runtime, "providers", "add", "lillestrom", *feeds)
    assert code == 0, err
    assert "added provider lillestrom" in out

    code, out, err = await mobility(runtime, "sync", "lillestrom")
    assert code == 0, err + out
    row = re.search(r"^\s+stations\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", out, re.MULTILINE)
    assert row is not None, out
    assert [int(n) for n in row.groups()] == [stations, 0, 0, stations]
    assert "validation:" in out

    code, out, _ = await mobility(runtime, "providers", "list")
    assert code == 0
    (line,) = [ln for ln in out.splitlines() if ln.startswith("lillestrom ")]
    assert line.split()[3] == str(stations)  # id, gbfs, vehicles, stations


async def test_command_line_errors_are_clear_and_exit_non_zero(runtime: Runtime) -> None:
    code, _, err = await mobility(
        runtime, "providers", "add", "Bad Slug!", "--url", "http://x/gbfs.json"
    )
    assert code == 2
    assert "INVALID_PROVIDER_ID" in err

    code, _, err = await mobility(runtime, "providers", "add", "ok", "--url", "ftp://x/gbfs.json")
    assert code == 2
    assert "INVALID_PROVIDER_CONFIG" in err

    code, _, err = await mobility(runtime, "providers", "add", "ok", "--feed", "nonsense")
    assert code == 2
    assert "NAME=URL" in err

    code, out, _ = await mobility(runtime, "sync", "nobody")
    assert code == 1
    assert "unknown provider 'nobody'" in out


async def test_sync_of_an_unreachable_provider_reports_the_failure(
    runtime: Runtime, feed_server: tuple[FeedServer, str]
) -> None:
    server, base_url = feed_server
    server.fail("/down/free_bike_status.json", 502)
    code, _, err = await mobility(
        runtime,
        "providers",
        "add",
        "down",
        f"--feed=free_bike_status={base_url}/down/free_bike_status.json",
    )
    assert code == 0, err

    code, out, _ = await mobility(runtime, "sync", "down")

    assert code == 1
    assert "FAILED" in out and "HTTP 502" in out


async def test_push_secret_is_shown_once_stored_and_refused_for_a_feed_fed_fleet(
    runtime: Runtime,
) -> None:
    from sqlalchemy import text

    from app.platform.db import transaction
    from tests.providers.test_push_ingest import DOCUMENTS

    config = '{"documents": ' + orjson.dumps(DOCUMENTS).decode() + "}"
    code, out, err = await mobility(
        runtime, "providers", "add", "pusher", "--adapter", "push", "--config", config
    )
    assert code == 0, err
    code, out, err = await mobility(runtime, "providers", "push-secret", "pusher")
    assert code == 0, err
    (secret,) = re.findall(r"whsec_\S+", out)
    async with runtime.sessions() as session:
        stored = await session.scalar(
            text("SELECT ingest_secret FROM providers WHERE id = 'pusher'")
        )
    # Sealed at rest (app/platform/secret_box.py), the same secret once opened.
    assert (
        secret not in stored
        and secret_box.current().open(stored, secret_box.INGEST_SECRET_PURPOSE) == secret
    )

    # A provider whose feed publishes its vehicles cannot push them too.
    code, _, err = await mobility(
        runtime, "providers", "add", "feedfed", "--feed", "vehicle_status=http://127.0.0.1:9/v.json"
    )
    assert code == 0, err
    async with transaction(runtime.sessions) as session:
        await session.execute(
            text("UPDATE providers SET feed_names = '{vehicle_status}' WHERE id = 'feedfed'")
        )
    code, out, err = await mobility(runtime, "providers", "push-secret", "feedfed")
    assert code == 2
    assert "cannot also push" in err + out
    async with runtime.sessions() as session:
        assert (
            await session.scalar(text("SELECT ingest_secret FROM providers WHERE id = 'feedfed'"))
            is None
        )
