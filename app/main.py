"""App factory: ``create_app(settings)``. The lifespan owns pools, clients and background sync."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from app.accounts import check_settings
from app.booking.maintenance import start_booking_maintenance
from app.fleet.webhooks import start_webhook_dispatcher, webhook_http_client
from app.platform import metrics, secret_box
from app.platform.edge import BodyCap, RequestLimits
from app.platform.pool_metrics import sampling_pools
from app.platform.request_id import RequestIdMiddleware
from app.platform.request_metrics import RequestMetrics
from app.platform.settings import Settings, get_settings
from app.platform.shutdown import GoingAway, Shutdown
from app.platform.tracing import configure_tracing
from app.probes import migration_heads
from app.probes import router as probes_router
from app.rest.gbfs import router as gbfs_router
from app.rest.ingest import router as ingest_router
from app.rest.metrics import router as metrics_router
from app.rest.reports import router as reports_router
from app.rest.tiles import router as tiles_router
from app.rest.web_assets import WebAssets
from app.rest.web_assets import app_router as web_app_router
from app.rest.web_assets import router as web_assets_router
from app.runtime import Runtime, open_runtime
from app.task_queue import scheduling
from graphql_schema.context import Context, client_address
from graphql_schema.fast_http import GraphQLFastPath
from graphql_schema.http import MobilityGraphQLRouter
from graphql_schema.observe import know_schema
from graphql_schema.operation import OperationPlans
from graphql_schema.schema import build_schema
from providers.demo_runtime import run_demo_tomp_operators, serve_demo_feeds
from providers.push import MAX_BODY_BYTES as PUSH_MAX_BODY_BYTES

log = logging.getLogger(__name__)

# Young-generation threshold 10,000 (Python's default is 700): rare enough that a search answer's
# thousands of short-lived objects do not trigger a collection each, small enough that each
# collection is short. At 50,000 every young collection scanned five times as much in one
# pause, and the p99 of the benchmark query was 15-25% higher at the same throughput
# (`python -m bench.ab`, three rounds, both orders; docs/performance.md, fourth round).
GC_THRESHOLDS = (10_000, 10, 10)


async def _ensure_index(runtime: Runtime) -> None:
    try:
        await runtime.sync.ensure_index_ready()
    except Exception as exc:  # Redis down at start: search falls back to PostGIS
        log.warning("could not build the search index at start: %s", exc)


def create_app(
    settings: Settings | None = None,
    *,
    fast_path: bool = True,
    shutdown: Shutdown | None = None,
) -> FastAPI:
    """``fast_path=False`` leaves every request to Strawberry's view (tests compare the two).
    ``shutdown``: begun by the server on SIGTERM (app/server.py); ``/readyz`` and the
    WebSockets follow it."""
    settings = settings or get_settings()
    shutdown = shutdown or Shutdown()
    # Refuse a production configuration that could not sign or check tokens, before serving.
    check_settings(settings)
    secret_box.configure(settings)
    # Before the runtime is opened, whose clients are traced if tracing is on; None: off, and
    # nothing of OpenTelemetry is installed (app/platform/tracing.py).
    tracing = configure_tracing(settings, role="api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime, contextlib.AsyncExitStack() as stack:
            app.state.runtime = runtime
            migration_heads()  # read the migration files now, not in the first /readyz
            # This process's pools, sampled for /metrics; its live gauges let go on the way out.
            stack.callback(metrics.release_process)
            await stack.enter_async_context(
                sampling_pools(
                    {
                        "orm": runtime.engine,
                        "search": runtime.search.pool,
                        "ingest": runtime.push.pool,
                    }
                )
            )
            if settings.demo_feeds:
                await stack.enter_async_context(serve_demo_feeds(settings, required=False))
                await stack.enter_async_context(run_demo_tomp_operators(settings))
            await _ensure_index(runtime)
            # Long-lived objects (the schema, caches, pools) need not be scanned by every
            # collection, and a search answer allocates thousands of short-lived objects:
            # freeze what exists, and collect the young generation less often than Python's
            # default but in short pauses (GC_THRESHOLDS says why).
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLDS)
            if settings.background_sync:
                await stack.enter_async_context(scheduling(runtime))
                await stack.enter_async_context(start_booking_maintenance(runtime.bookings))
                # Its own client, not runtime.http (which follows redirects and may reach any
                # address): an organisation chose these URLs (app/platform/outbound.py).
                webhook_http = await stack.enter_async_context(webhook_http_client(settings))
                if tracing is not None:
                    stack.callback(tracing.instrument_clients(http=[webhook_http]))
                await stack.enter_async_context(
                    start_webhook_dispatcher(runtime.sessions, webhook_http, settings)
                )
            yield

    app = FastAPI(
        title="Mobility aggregator",
        version="0.1.0",
        lifespan=lifespan,
        # FastAPI's own request spans, outside the whole middleware stack, so the GraphQL fast
        # path's answers are traced too; switched off with tracing (it would otherwise start
        # on any global tracer provider some library installed).
        telemetry=tracing.fastapi_telemetry() if tracing is not None else {"tracing": False},
    )

    async def get_context(request: HTTPConnection) -> Context:
        # HTTPConnection: the same getter serves HTTP requests and websockets.
        runtime: Runtime = request.app.state.runtime
        return Context.of(
            runtime,
            authorization=request.headers.get("authorization"),
            client_address=client_address(request.scope),
            # A websocket's context serves every operation on the socket.
            remember_viewer=request.scope["type"] != "websocket",
        )

    app.state.shutdown = shutdown
    schema = build_schema(settings)
    # What the GraphQL metrics may name: the schema's root fields, the operator's names.
    know_schema(schema)
    metrics.allow_operation_names(settings.metrics_operation_names)
    app.state.graphql_schema = schema
    app.state.operation_plans = OperationPlans(schema)
    graphql = MobilityGraphQLRouter(
        schema,
        context_getter=get_context,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        max_subscriptions_per_connection=settings.max_subscriptions_per_socket,
        # Strawberry refuses cross-origin websocket handshakes; the origins allowed to call
        # the API over HTTP (CORS) may open its websocket too.
        allowed_origins=settings.cors_origins,
    )
    graphql.ws_keepalive_seconds = settings.ws_keepalive_seconds
    basemap = settings.web_basemap_style_url
    web_assets = WebAssets(
        settings.web_dist_dir, basemap_style_url=str(basemap) if basemap is not None else None
    )
    graphql.web_assets = web_assets
    app.include_router(graphql, prefix="/graphql")
    if settings.graphiql_enabled:
        app.include_router(web_assets_router(web_assets))
    if settings.web_app:
        app.include_router(web_app_router(web_assets))
    if fast_path:
        app.add_middleware(GraphQLFastPath, path="/graphql")
    # Outside the fast path and every route: one body cap for every content type and transport.
    app.add_middleware(
        RequestLimits,
        default_bytes=settings.max_request_bytes,
        caps=[BodyCap("/ingest/", PUSH_MAX_BODY_BYTES)],
    )
    # WebSockets are closed with 1001 once shutdown begins (app/platform/shutdown.py).
    app.add_middleware(GoingAway, shutdown=shutdown)
    if settings.cors_origins:
        # Outside the fast path, so its answers carry the CORS headers too, and a preflight
        # never reaches it. Credentials are tokens in a header, never cookies.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "accept", "x-request-id"],
            expose_headers=["retry-after", "x-request-id"],
            max_age=600,
        )
    # Outermost: every answer carries the request's id (the edge's refusals and CORS preflights
    # too), and every line logged while a request is served has it (app/platform/request_id.py).
    app.add_middleware(RequestIdMiddleware)

    # Outermost: every request is timed, the edge's refusals and the fast path's answers too.
    app.add_middleware(RequestMetrics, known_paths=("/graphql",))

    app.include_router(ingest_router)
    app.include_router(metrics_router)
    app.include_router(gbfs_router)
    app.include_router(reports_router)
    app.include_router(tiles_router)
    # /livez, /readyz, and /health (as /livez) for existing monitors.
    app.include_router(probes_router)

    return app
