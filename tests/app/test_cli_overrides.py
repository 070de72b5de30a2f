"""Feed overrides from the `mobility` command, run as a real process against the test database."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.app.test_cli import mobility
from tests.helpers import feed_dir, raw

FOLDER = "lillestrom-bysykkel"


async def test_overrides_are_added_validated_shown_changed_and_removed_from_the_command_line(
    runtime: Runtime, feed_server: tuple[FeedServer, str], tmp_path: Path
) -> None:
    server, base_url = feed_server
    paths = server.add_directory("lille", feed_dir(FOLDER))
    feeds = [f"--feed={Path(p).stem}={base_url}{p}" for p in paths if Path(p).stem != "gbfs"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pricing_plans": [{"plan_id": "p", "currency": "NOK"}]}))
    good = tmp_path / "good.json"
    overrides = {"exclude_feeds": ["system_pricing_plans"]}
    good.write_text(json.dumps(overrides))

    code, _, err = await mobility(
        runtime, "providers", "add", "lille", *feeds, "--overrides", f"@{bad}"
    )
    assert code == 2
    assert "INVALID_PROVIDER_CONFIG" in err and "price" in err

    code, out, err = await mobility(
        runtime, "providers", "add", "lille", *feeds, "--overrides", f"@{good}"
    )
    assert code == 0, err
    code, out, err = await mobility(runtime, "providers", "overrides", "lille")
    assert code == 0, err
    assert json.loads(out) == overrides

    code, out, err = await mobility(runtime, "sync", "lille")
    assert code == 0, err + out
    async with runtime.sessions() as session:
        plans = await session.execute(
            text("SELECT count(*) FROM pricing_plans WHERE provider_id = 'lille'")
        )
        assert plans.scalar_one() == 0  # excluded

    # Replaced through the update path (a bad one changes nothing), then removed.
    code, _, err = await mobility(
        runtime, "providers", "overrides", "lille", "--set", '{"exclude_feeds": ["x"]}'
    )
    assert code == 2 and "INVALID_PROVIDER_CONFIG" in err
    code, out, err = await mobility(runtime, "providers", "overrides", "lille", "--clear")
    assert code == 0, err
    assert "lille has no overrides" in out
    code, out, err = await mobility(runtime, "sync", "lille")
    assert code == 0, err + out
    raw_plans = raw(FOLDER, "system_pricing_plans")["data"]["plans"]
    async with runtime.sessions() as session:
        plans = await session.execute(
            text("SELECT count(*) FROM pricing_plans WHERE provider_id = 'lille'")
        )
        assert plans.scalar_one() == len(raw_plans)

    code, out, err = await mobility(runtime, "providers", "show", "lille")
    assert code == 0, err
    assert '"adapter"' not in out and '"feeds"' in out
    assert "latest sync" in out and "succeeded" in out
