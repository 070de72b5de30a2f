"""GraphiQL and the web app (/app/) from our own assets (web/dist, built from npm packages at
install time), and CORS for browser apps of configured origins."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.platform.settings import PROJECT_ROOT, Settings
from app.runtime import Runtime
from tests.conftest import make_settings

BUILT = PROJECT_ROOT / "web" / "dist" / "graphiql" / "manifest.json"
HTML = {"Accept": "text/html"}


def _require_built() -> None:
    if not BUILT.exists():
        message = "web/dist is not built: run `make install`"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


async def _client(runtime: Runtime, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


@pytest.fixture
async def browser_api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(runtime, runtime.settings):
        yield client


async def test_graphiql_page_loads_only_our_own_assets_with_integrity(
    browser_api: httpx.AsyncClient,
) -> None:
    _require_built()
    page = await browser_api.get("/graphql", headers=HTML)
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    references = re.findall(r'(?:src|href)="([^"]+)"\s+integrity="([^"]+)"', page.text)
    assert len(references) >= 4  # GraphiQL, React, ReactDOM, our start-up script...
    all_links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert all(u.startswith(("/graphiql/", "data:")) for u in all_links), all_links
    assert "<script>" not in page.text  # no inline script: the policy forbids it
    for url, integrity in references:
        asset = await browser_api.get(url)
        assert asset.status_code == 200, url
        digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url
        again = await browser_api.get(url, headers={"If-None-Match": asset.headers["etag"]})
        assert again.status_code == 304


async def test_only_the_built_files_are_served(browser_api: httpx.AsyncClient) -> None:
    _require_built()
    for name in ("index.html", "manifest.json", "..%2Fpackage.json", "nothing.js"):
        assert (await browser_api.get(f"/graphiql/{name}")).status_code == 404, name


async def test_without_a_build_the_page_says_how_to_make_one(
    runtime: Runtime, tmp_path: Path
) -> None:
    settings = make_settings(web_dist_dir=tmp_path)
    async for client in _client(runtime, settings):
        page = await client.get("/graphql", headers=HTML)
        assert page.status_code == 503
        assert "make install" in page.text


async def test_graphiql_off_serves_neither_page_nor_assets(runtime: Runtime) -> None:
    settings = make_settings(graphiql=False)
    async for client in _client(runtime, settings):
        assert (await client.get("/graphql", headers=HTML)).status_code != 200
        assert (await client.get("/graphiql/graphiql.min.js")).status_code == 404


async def test_the_web_app_page_loads_only_its_own_files_with_integrity(
    browser_api: httpx.AsyncClient,
) -> None:
    _require_built()
    redirect = await browser_api.get("/app")
    assert redirect.status_code == 308 and redirect.headers["location"].endswith("/app/")
    page = await browser_api.get("/app/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "unsafe-inline" not in policy  # the app sets no inline script or style
    references = re.findall(r'(?:src|href)="([^"]+)"\s+integrity="([^"]+)"', page.text)
    assert len(references) >= 2  # the bundle's script and stylesheet
    all_links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert all(u.startswith(("/app/", "data:", "#")) for u in all_links), all_links
    for url, integrity in references:
        asset = await browser_api.get(url)
        assert asset.status_code == 200, url
        digest = base64.b64encode(hashlib.sha384(asset.content).digest()).decode()
        assert integrity == f"sha384-{digest}", url
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable", url
    # MapLibre's worker is one of our files too (the CSP build): listed, served, no blob: URL.
    manifest = (PROJECT_ROOT / "web" / "dist" / "app" / "manifest.json").read_text()
    worker = re.search(r'"(assets/maplibre-gl-csp-worker[^"]+\.js)"', manifest)
    assert worker is not None
    assert (await browser_api.get(f"/app/{worker.group(1)}")).status_code == 200
    for name in ("index.html", "manifest.json", "..%2F..%2Fpackage.json", "assets/nothing.js"):
        assert (await browser_api.get(f"/app/{name}")).status_code == 404, name
    config = await browser_api.get("/app/config.json")
    assert config.json() == {"basemapStyleUrl": None}


async def test_a_basemap_is_named_in_the_config_and_allowed_by_the_policy(
    runtime: Runtime,
) -> None:
    _require_built()
    style = "https://tiles.example.org/styles/streets/style.json"
    settings = make_settings(web_basemap_style_url=style)
    async for client in _client(runtime, settings):
        assert (await client.get("/app/config.json")).json() == {"basemapStyleUrl": style}
        policy = (await client.get("/app/")).headers["content-security-policy"]
        assert "connect-src 'self' https://tiles.example.org;" in policy
        assert "img-src 'self' data: blob: https://tiles.example.org;" in policy


async def test_the_web_app_can_be_switched_off(runtime: Runtime) -> None:
    async for client in _client(runtime, make_settings(web_app=False)):
        assert (await client.get("/app/")).status_code == 404


BROWSER_NAVIGATION = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)


@pytest.mark.parametrize(
    ("accept", "page"),
    [
        (BROWSER_NAVIGATION, True),  # a reload of, or a link to, GraphiQL with its query
        ("text/html", True),
        ("*/*", False),  # curl
        ("application/json", False),
        ("application/graphql-response+json, application/json;q=0.9", False),
        ("text/html, application/json", False),  # a client that takes JSON gets JSON
    ],
)
async def test_a_query_in_the_address_opens_graphiql_for_a_browser_and_runs_for_a_client(
    browser_api: httpx.AsyncClient, accept: str, page: bool
) -> None:
    _require_built()
    answer = await browser_api.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"Accept": accept}
    )
    assert answer.status_code == 200
    if page:
        assert answer.headers["content-type"].startswith("text/html")
        assert "/graphiql/init.js" in answer.text
    else:
        assert answer.json() == {"data": {"__typename": "Query"}}


async def test_with_graphiql_off_a_query_in_the_address_runs_for_a_browser_too(
    runtime: Runtime,
) -> None:
    async for client in _client(runtime, make_settings(graphiql=False)):
        answer = await client.get(
            "/graphql", params={"query": "{ __typename }"}, headers={"Accept": BROWSER_NAVIGATION}
        )
        assert answer.status_code == 200
        assert answer.json() == {"data": {"__typename": "Query"}}


ALLOWED = "https://app.example"


@pytest.fixture
async def cors_api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(runtime, make_settings(cors_origins=f"{ALLOWED}, http://x:5173")):
        yield client


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_preflight_allows_configured_origins_only(cors_api: httpx.AsyncClient) -> None:
    ok = await cors_api.options("/graphql", headers=_preflight(ALLOWED))
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in ok.headers  # tokens, never cookies
    refused = await cors_api.options("/graphql", headers=_preflight("https://evil.example"))
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("path", ["/graphql", "/health"])
async def test_cors_headers_on_answers_to_allowed_origins(
    cors_api: httpx.AsyncClient, path: str
) -> None:
    if path == "/graphql":  # the fast path answers this one, ahead of FastAPI
        response = await cors_api.post(
            path, json={"query": "{ __typename }"}, headers={"Origin": ALLOWED}
        )
    else:
        response = await cors_api.get(path, headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert "retry-after" in response.headers["access-control-expose-headers"].lower()
    other = await cors_api.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


async def test_no_cors_unless_configured(browser_api: httpx.AsyncClient) -> None:
    response = await browser_api.options("/graphql", headers=_preflight(ALLOWED))
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", ()),
        ("https://a.example", ("https://a.example",)),
        (
            " https://A.example , http://localhost:5173 ",
            ("https://a.example", "http://localhost:5173"),
        ),
        ('["https://a.example", "http://[::1]:8080"]', ("https://a.example", "http://[::1]:8080")),
    ],
)
def test_cors_origins_setting_reads_lists(value: str, expected: tuple[str, ...]) -> None:
    assert Settings(cors_origins=value).cors_origins == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", ["*", "https://a.example/", "https://a.example/app", "ftp://a.example", "a.example"]
)
def test_cors_origins_must_be_origins(value: str) -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        Settings(cors_origins=value)  # type: ignore[arg-type]
