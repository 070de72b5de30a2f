"""The metrics as Prometheus sees them: Debian's ``prometheus`` scrapes a real ``mobility serve
--workers 2`` with the bearer token it is configured with, and its HTTP API answers for
series counted across both processes and for the state read at scrape time. The alerting
rules in ops/prometheus/ pass ``promtool check rules`` and their unit tests.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.helpers import synced_conformance_provider
from tests.processes import external_process, free_port, mobility_process, wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus"
TOKEN = "prometheus-scrape-token-0123456789"
PROBE = """
query PromProbe($lat: Float!, $lon: Float!) {
  vehicles(near: {lat: $lat, lon: $lon, radiusMeters: 3000}, first: 3) { id }
}"""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: `make install` installs Debian's prometheus package")
    return path


def test_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    promtool = _binary("promtool")
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 8 rules found" in checked.stdout
    tested = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr


async def _query(client: httpx.AsyncClient, base: str, promql: str) -> list[dict[str, Any]]:
    response = await client.get(f"{base}/api/v1/query", params={"query": promql})
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _value(result: list[dict[str, Any]]) -> float | None:
    return float(result[0]["value"][1]) if result else None


async def test_prometheus_scrapes_every_api_process(
    runtime: Runtime, feed_server: tuple[FeedServer, str], tmp_path: Path
) -> None:
    prometheus = _binary("prometheus")
    slug = await synced_conformance_provider(runtime, feed_server, "getaround-stavanger")
    api_port, prom_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    prom = f"http://127.0.0.1:{prom_port}"
    logs = [tmp_path / "api.log", tmp_path / "prometheus.log"]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mobility
    authorization:
      credentials: {TOKEN}
    static_configs:
      - targets: ["127.0.0.1:{api_port}"]
"""
    )
    with mobility_process(
        ["serve", "--port", str(api_port), "--no-sync", "--workers", "2"],
        runtime.settings,
        logs[0],
        MOBILITY_METRICS_TOKEN=TOKEN,
    ):
        async with httpx.AsyncClient(timeout=10) as client:

            async def api_up() -> bool:
                try:
                    return (await client.get(f"{api}/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(api_up, 60, "the API", logs)
            # Without the token, the API refuses the scrape (Prometheus sends it; this does not).
            refused = await client.get(f"{api}/metrics", headers={"authorization": "Bearer x"})
            assert refused.status_code == 401

            # Each request on a new connection, so the two processes share them.
            searches = 40
            for _ in range(searches):
                async with httpx.AsyncClient(timeout=10) as fresh:
                    body = (
                        await fresh.post(
                            f"{api}/graphql",
                            json={"query": PROBE, "variables": {"lat": 58.97, "lon": 5.73}},
                        )
                    ).json()
                    assert "errors" not in body, body

            with external_process(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                logs[1],
            ):
                probe = (
                    'sum(mobility_graphql_operation_duration_seconds_count{operation="PromProbe",'
                    'type="query",outcome="ok"})'
                )

                async def counted() -> bool:
                    try:
                        return _value(await _query(client, prom, probe)) == searches
                    except (httpx.HTTPError, ValueError):
                        return False

                await wait_for(counted, 60, "Prometheus to scrape the searches", logs)
                # Several scrapes later, every one of them saw all the searches, whichever
                # process answered it: the processes count into one set of files.
                await asyncio.sleep(4)
                every_scrape = await _query(client, prom, f"min_over_time({probe}[3s:1s])")
                assert _value(every_scrape) == searches
                up = await _query(client, prom, 'up{job="mobility"}')
                assert _value(up) == 1
                redis = await _query(client, prom, 'sum(mobility_searches_total{source="redis"})')
                assert _value(redis) == searches
                state = await _query(client, prom, 'mobility_state_up{store="database"}')
                assert _value(state) == 1
                provider = await _query(
                    client, prom, f'mobility_provider_status{{provider="{slug}",status="ok"}}'
                )
                assert _value(provider) == 1
                pools = await _query(client, prom, "count(mobility_db_pool_connections_in_use)")
                assert _value(pools) == 3  # orm, search, ingest, summed over the processes
