"""What the API serves to browsers: GraphiQL's page and assets, and the reference web app at
``/app/`` (docs/web-app.md), built from npm packages into ``web/dist`` at install time
(``web/scripts/build.mjs``), never loaded from a CDN.

A built bundle is a folder of files plus ``manifest.json`` (file name -> Subresource Integrity
hash). Only the files the manifest lists are served, with the hash as their ETag; pages are
rendered with each asset's integrity attribute and a Content-Security-Policy that lets the
page load nothing from any other host.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

log = logging.getLogger(__name__)

GRAPHIQL = "graphiql"
GRAPHIQL_ASSETS_PATH = "/graphiql"
APP = "app"
APP_PATH = "/app"

# 'self' covers the page's own ws:// and wss:// (CSP Level 3), which GraphiQL's subscriptions
# use. Inline styles: React and CodeMirror set style attributes; no inline script is allowed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def app_policy(basemap_origin: str | None) -> str:
    """The web app's Content-Security-Policy: everything from this server (MapLibre's worker is
    a file of ours: its CSP build), no inline script or style; a configured basemap's origin
    may be fetched from and drawn."""
    extra = f" {basemap_origin}" if basemap_origin else ""
    return (
        f"default-src 'self'; script-src 'self'; style-src 'self'; worker-src 'self'; "
        f"img-src 'self' data: blob:{extra}; connect-src 'self'{extra}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )


_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".html": "text/html; charset=utf-8",
}
_TEMPLATE = "index.html"


@dataclass(frozen=True)
class Bundle:
    """One built bundle: its folder and the integrity hash of each file it may serve."""

    directory: Path
    integrity: dict[str, str]

    def render(self, assets_url: str) -> str:
        page = (self.directory / _TEMPLATE).read_text(encoding="utf-8")
        page = page.replace("{{assets}}", assets_url)
        for name, digest in self.integrity.items():
            page = page.replace("{{sri:" + name + "}}", digest)
        if "{{" in page:
            raise ValueError(f"{self.directory / _TEMPLATE}: a placeholder names no built file")
        return page


class WebAssets:
    def __init__(self, dist: Path, *, basemap_style_url: str | None = None) -> None:
        self.dist = dist
        self.basemap_style_url = basemap_style_url
        # name -> (the manifest's modification time, the bundle read from it)
        self._bundles: dict[str, tuple[float, Bundle]] = {}

    @property
    def graphiql(self) -> Bundle | None:
        return self._bundle(GRAPHIQL)

    @property
    def app(self) -> Bundle | None:
        return self._bundle(APP)

    def app_page(self) -> Response:
        bundle = self.app
        headers = dict(_PAGE_HEADERS)
        headers["Content-Security-Policy"] = app_policy(_origin(self.basemap_style_url))
        if bundle is None:
            return HTMLResponse(_APP_NOT_BUILT, status_code=503, headers=headers)
        return HTMLResponse((bundle.directory / _TEMPLATE).read_text("utf-8"), headers=headers)

    def app_config(self) -> Response:
        """What the page cannot know by itself: the operator's basemap, if any."""
        body = {"basemapStyleUrl": self.basemap_style_url}
        return Response(
            orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-cache"}
        )

    def _bundle(self, name: str) -> Bundle | None:
        """The bundle as last built: re-read when its manifest changes, so a build made while
        the server runs is served at once (the app's file names change with every build), and
        not remembered while missing."""
        directory = self.dist / name
        path = directory / "manifest.json"
        try:
            built_at = path.stat().st_mtime
            cached = self._bundles.get(name)
            if cached is not None and cached[0] == built_at:
                return cached[1]
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("web bundle %r not built (%s): run `make install`", name, exc)
            return None
        bundle = Bundle(directory, {str(k): str(v) for k, v in manifest.items()})
        self._bundles[name] = (built_at, bundle)
        return bundle

    def graphiql_page(self) -> Response:
        bundle = self.graphiql
        if bundle is None:
            return HTMLResponse(_NOT_BUILT, status_code=503, headers=_PAGE_HEADERS)
        return HTMLResponse(bundle.render(GRAPHIQL_ASSETS_PATH), headers=_PAGE_HEADERS)

    def asset(
        self, bundle: Bundle | None, file: str, request: Request, *, immutable: bool = False
    ) -> Response:
        if bundle is None or file == _TEMPLATE or file not in bundle.integrity:
            return Response(status_code=404)
        etag = f'"{bundle.integrity[file]}"'
        headers = {
            "ETag": etag,
            # A name with its content's hash in it never changes meaning: kept for a year. Other
            # names are revalidated on each load (the bytes may change between builds).
            "Cache-Control": "public, max-age=31536000, immutable" if immutable else "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
            return Response(status_code=304, headers=headers)
        media = _CONTENT_TYPES.get(Path(file).suffix, "application/octet-stream")
        return Response((bundle.directory / file).read_bytes(), media_type=media, headers=headers)


def _origin(url: str | None) -> str | None:
    if url is None:
        return None
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


_APP_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>Web app not built</title>
<p>The web app is not built. Run <code>make install</code>, then reload.</p>"""

_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>GraphiQL not built</title>
<p>GraphiQL's assets are not built. Run <code>make install</code> (it runs
<code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>), then reload.</p>"""


def app_router(assets: WebAssets) -> APIRouter:
    """The web app: its page at /app/, its files under /app/, and its config."""
    routes = APIRouter()

    @routes.get(APP_PATH, include_in_schema=False)
    async def app_root() -> Response:
        return RedirectResponse(APP_PATH + "/", status_code=308)

    @routes.get(APP_PATH + "/", include_in_schema=False)
    async def app_page() -> Response:
        return assets.app_page()

    @routes.get(APP_PATH + "/config.json", include_in_schema=False)
    async def app_config() -> Response:
        return assets.app_config()

    @routes.get(APP_PATH + "/{file:path}", include_in_schema=False)
    async def app_file(file: str, request: Request) -> Response:
        # Vite names the bundle's files after their content (assets/index-<hash>.js).
        return assets.asset(assets.app, file, request, immutable=file.startswith("assets/"))

    return routes


def router(assets: WebAssets) -> APIRouter:
    routes = APIRouter()

    @routes.get(GRAPHIQL_ASSETS_PATH + "/{file}", include_in_schema=False)
    async def graphiql_asset(file: str, request: Request) -> Response:
        return assets.asset(assets.graphiql, file, request)

    return routes
