"""The JavaScript reference clients (graphql-ws, Apollo Client 4, graphql-http's audit) and a real
browser (Playwright driving Debian's Chromium), each test file of ``web/test/`` run with
``node --test`` against a live API (tests/clients/live_api.py).

These are the clients apps really use; our own Python clients accept things theirs do not
(binary frames, for one), so the product is only proven when these pass.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from app.platform.settings import PROJECT_ROOT
from app.runtime import Runtime
from tests.clients.live_api import live_api

WEB = PROJECT_ROOT / "web"
SCRIPTS = sorted((WEB / "test").glob("*.test.mjs"))
# Below pytest-timeout's 180 s, so a hung client ends with its own output, not a bare timeout.
NODE_DEADLINE_SECONDS = 170.0


def _require_node_packages() -> str:
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = "node is not on PATH (Node 20 is required; see README)"
    elif not (WEB / "node_modules" / ".package-lock.json").exists():
        problem = "web/node_modules is missing: run `make install` (npm ci in web/)"
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    assert node is not None
    return node


def test_every_client_script_is_run() -> None:
    # The parametrisation below is built from this glob: an empty list would pass silently.
    assert {p.name for p in SCRIPTS} >= {
        "apollo.test.mjs",
        "app.test.mjs",
        "browser.test.mjs",
        "graphql-http-audit.test.mjs",
        "graphql-ws.test.mjs",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
async def test_reference_client(runtime: Runtime, tmp_path: Path, script: Path) -> None:
    node = _require_node_packages()
    log = tmp_path / "api.log"
    async with live_api(runtime, log) as live:
        env = {**os.environ, "MOBILITY_CONTROL_URL": live.control_url, "NO_COLOR": "1"}
        proc = await asyncio.create_subprocess_exec(
            node,
            "--test",
            "--test-reporter=spec",
            "--test-concurrency=1",
            str(script.relative_to(WEB)),
            cwd=WEB,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), NODE_DEADLINE_SECONDS)
        except TimeoutError:
            proc.kill()
            output, _ = await proc.communicate()
            output += b"\n[killed: still running after the deadline]"
    text = output.decode(errors="replace")
    if proc.returncode != 0:
        api_log = log.read_text(errors="replace")[-6000:] if log.exists() else ""
        pytest.fail(f"{script.name} failed:\n{text}\n--- API process log (tail)\n{api_log}")
    # The spec reporter's summary: something ran, and nothing failed or was skipped.
    info = "\u2139"  # the reporter's "information source" sign that starts its summary lines
    passed = re.search(f"^{info} pass (\\d+)$", text, re.MULTILINE)
    assert passed is not None and int(passed.group(1)) > 0, text
    not_passed = re.search(f"^{info} (fail|skipped|todo|cancelled) [1-9]", text, re.MULTILINE)
    assert not_passed is None, text
