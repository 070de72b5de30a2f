"""The metrics as Prometheus sees them: Debian's ``prometheus`` scrapes a real ``mobility serve
--workers 2`` with the bearer token it is configured with, and its HTTP API answers for
series counted across both processes and for the state read at scrape time. The alerting
rules in ops/prometheus/ pass ``promtool check rules`` and their unit tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.runtime import Runtime
from providers.simulators.feed_server import FeedServer
from tests.conftest import make_settings
from tests.helpers import add_conformance_provider, synced_conformance_provider
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
    assert "SUCCESS: 9 rules found" in checked.stdout
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
        MOBILITY_METRICS_OPERATION_NAMES="PromProbe,SomeOtherName",
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
                    'field="vehicles",type="query",outcome="ok"})'
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
                # One series per pool (orm, search, ingest), the processes' values summed.
                pools = await _query(client, prom, "count(mobility_db_pool_connections_in_use)")
                assert _value(pools) == 3


async def _succeeded_syncs(runtime: Runtime, provider: str) -> int:
    async with runtime.sessions() as session:
        count = await session.scalar(
            text("SELECT count(*) FROM sync_runs WHERE provider_id = :p AND status = 'succeeded'"),
            {"p": provider},
        )
    return int(count or 0)


def _samples(text_format: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text_format):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def test_worker_and_scheduler_metrics_count_every_worker_process(
    runtime: Runtime, feed_server: tuple[FeedServer, str], tmp_path: Path
) -> None:
    """Two worker processes count into one directory that the supervising process serves:
    the syncs it reports equal the succeeded syncs the database recorded."""
    server, base_url = feed_server
    slug = await add_conformance_provider(runtime, server, base_url, "lillestrom-bysykkel")
    settings = make_settings(sync_min_interval_seconds=1.0, sync_max_interval_seconds=1.0)
    worker_port, scheduler_port = free_port(), free_port()
    logs = [tmp_path / "worker.log", tmp_path / "scheduler.log"]
    worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
    with (
        mobility_process(
            ["worker", "--processes", "2", "--metrics-port", str(worker_port)],
            settings,
            logs[0],
            MOBILITY_METRICS_TOKEN=TOKEN,
        ),
        mobility_process(["scheduler", "--metrics-port", str(scheduler_port)], settings, logs[1]),
    ):
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=10, headers=headers) as client:

            async def scrape(url: str) -> str | None:
                try:
                    response = await client.get(url)
                except httpx.HTTPError:
                    return None
                return response.text if response.status_code == 200 else None

            async def synced_thrice() -> bool:
                body = await scrape(worker_metrics)
                ok = f'provider="{slug}"'
                return (
                    body is not None and ok in body and await _succeeded_syncs(runtime, slug) >= 3
                )

            await wait_for(synced_thrice, 60, "three syncs through the workers", logs)
            # Without the token, the worker's port refuses.
            async with httpx.AsyncClient(timeout=10) as anonymous:
                refused = await anonymous.get(worker_metrics)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "METRICS_TOKEN_REQUIRED"
            # The counts and the database agree (read the metrics on both sides of the
            # database read, so a sync finishing in between is seen; syncs come once a
            # second, so a few tries find a quiet moment).
            for _ in range(20):
                first = await scrape(worker_metrics)
                recorded = await _succeeded_syncs(runtime, slug)
                second = await scrape(worker_metrics)
                assert first is not None and second is not None
                counted = _samples(
                    first,
                    "mobility_provider_sync_duration_seconds_count",
                    provider=slug,
                    outcome="ok",
                )
                if counted == _samples(
                    second,
                    "mobility_provider_sync_duration_seconds_count",
                    provider=slug,
                    outcome="ok",
                ):
                    break
            else:
                pytest.fail("the syncs never paused between two scrapes")
            assert counted == recorded
            tasks = _samples(second, "mobility_task_duration_seconds_count", outcome="ok")
            assert tasks >= counted
            scheduler_body = await scrape(f"http://127.0.0.1:{scheduler_port}/metrics")
            assert scheduler_body is not None
            # The scheduler's own process: prometheus-client's process metrics are there.
            assert "process_cpu_seconds_total" in scheduler_body


def test_a_metrics_port_beyond_this_host_needs_a_token(tmp_path: Path) -> None:
    """`mobility worker --metrics-host 0.0.0.0` without MOBILITY_METRICS_TOKEN would hand
    provider ids to anyone who reaches the port: it refuses to start, and says why."""
    env = {k: v for k, v in os.environ.items() if k != "MOBILITY_METRICS_TOKEN"}
    command = [sys.executable, "-m", "app.cli", "worker", "--metrics-host", "0.0.0.0"]
    done = subprocess.run(
        [*command, "--metrics-port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "MOBILITY_METRICS_TOKEN" in done.stderr
