"""What the API serves to browsers: GraphiQL's page and assets, built from npm packages into
``web/dist`` at install time (``web/scripts/build.mjs``), never loaded from a CDN.

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

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

log = logging.getLogger(__name__)

GRAPHIQL = "graphiql"
GRAPHIQL_ASSETS_PATH = "/graphiql"

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
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
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
    def __init__(self, dist: Path) -> None:
        self.dist = dist
        self._graphiql: Bundle | None = None

    @property
    def graphiql(self) -> Bundle | None:
        # Not remembered while missing: a build made after start-up is served without a restart.
        if self._graphiql is None:
            self._graphiql = self._bundle(GRAPHIQL)
        return self._graphiql

    def _bundle(self, name: str) -> Bundle | None:
        directory = self.dist / name
        try:
            manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("web bundle %r not built (%s): run `make install`", name, exc)
            return None
        return Bundle(directory, {str(k): str(v) for k, v in manifest.items()})

    def graphiql_page(self) -> Response:
        bundle = self.graphiql
        if bundle is None:
            return HTMLResponse(_NOT_BUILT, status_code=503, headers=_PAGE_HEADERS)
        return HTMLResponse(bundle.render(GRAPHIQL_ASSETS_PATH), headers=_PAGE_HEADERS)

    def asset(self, bundle: Bundle | None, file: str, request: Request) -> Response:
        if bundle is None or file == _TEMPLATE or file not in bundle.integrity:
            return Response(status_code=404)
        etag = f'"{bundle.integrity[file]}"'
        headers = {
            "ETag": etag,
            # Revalidated on each load: the names do not change between builds, the bytes may.
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
            return Response(status_code=304, headers=headers)
        media = _CONTENT_TYPES.get(Path(file).suffix, "application/octet-stream")
        return Response((bundle.directory / file).read_bytes(), media_type=media, headers=headers)


_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>GraphiQL not built</title>
<p>GraphiQL's assets are not built. Run <code>make install</code> (it runs
<code>npm ci &amp;&amp; npm run build</code> in <code>web/</code>), then reload.</p>"""


def router(assets: WebAssets) -> APIRouter:
    routes = APIRouter()

    @routes.get(GRAPHIQL_ASSETS_PATH + "/{file}", include_in_schema=False)
    async def graphiql_asset(file: str, request: Request) -> Response:
        return assets.asset(assets.graphiql, file, request)

    return routes
