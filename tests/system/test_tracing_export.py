"""A real `mobility serve` process with OTEL_EXPORTER_OTLP_ENDPOINT set exports its spans over
OTLP/HTTP (protobuf) to the collector named there: here a small recording server on 127.0.0.1,
decoded with OpenTelemetry's own protobuf classes."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.runtime import Runtime
from providers.simulators.feed_server import serve_in_background
from tests.conftest import make_settings
from tests.processes import free_port, mobility_process, wait_for


class RecordingCollector:
    """Accepts OTLP/HTTP trace exports and keeps them, decoded."""

    def __init__(self) -> None:
        self.exports: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        self.app = Starlette(routes=[Route("/v1/traces", self._traces, methods=["POST"])])

    async def _traces(self, request: Request) -> Response:
        self.content_types.append(request.headers.get("content-type", ""))
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.body())
        self.exports.append(export)
        return Response(b"", media_type="application/x-protobuf")


def _attributes(attributes: object) -> dict[str, str]:
    return {a.key: a.value.string_value for a in attributes}  # type: ignore[attr-defined]


async def test_the_api_process_exports_its_spans_to_the_configured_collector(
    runtime: Runtime, tmp_path: Path
) -> None:
    collector = RecordingCollector()
    log = tmp_path / "api.log"
    port = free_port()
    # A caller's trace: the API's server span must continue it.
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    async with serve_in_background(collector.app) as collector_url:
        with mobility_process(
            ["serve", "--port", str(port), "--no-sync"],
            make_settings(),
            log,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector_url,
            # Batches sent every 100 ms rather than 5 s, so the test waits less.
            OTEL_BSP_SCHEDULE_DELAY="100",
        ):
            api = f"http://127.0.0.1:{port}"

            async def health_answered() -> bool:
                async with httpx.AsyncClient() as http:
                    try:
                        response = await http.get(
                            f"{api}/health",
                            headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
                        )
                    except httpx.TransportError:
                        return False
                    return response.status_code == 200

            await wait_for(health_answered, 60, "the API process", [log])

            def ours() -> list[tuple[dict[str, str], object]]:
                return [
                    (_attributes(rs.resource.attributes), span)
                    for export in collector.exports
                    for rs in export.resource_spans
                    for ss in rs.scope_spans
                    for span in ss.spans
                    if span.trace_id.hex() == trace_id
                ]

            async def exported() -> bool:
                return any(s.kind == Span.SpanKind.SPAN_KIND_SERVER for _, s in ours())  # type: ignore[attr-defined]

            await wait_for(exported, 30, "the request's span at the collector", [log])

    (resource, span), *_ = [
        (r, s)
        for r, s in ours()
        if s.kind == Span.SpanKind.SPAN_KIND_SERVER  # type: ignore[attr-defined]
    ]
    assert resource["service.name"] == "mobility-aggregator"
    assert resource["mobility.process.role"] == "api"
    assert span.parent_span_id.hex() == parent_id  # type: ignore[attr-defined]
    assert _attributes(span.attributes)["url.path"] == "/health"  # type: ignore[attr-defined]
    assert set(collector.content_types) == {"application/x-protobuf"}
