"""OpenTelemetry traces (app/platform/tracing.py, docs/operations-otel-traces.md): off unless an
OTLP endpoint is configured.

The endpoint, the service name and the SDK switch are read under the OpenTelemetry
specification's own variable names (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_SDK_DISABLED``), not
``MOBILITY_``-prefixed ones: a collector sidecar or an operator's platform sets those for every
service it runs, and ours should follow them without a translation. Each field's name is its
variable's name, so a test builds ``Settings(otel_exporter_otlp_endpoint=...)`` as with any
other field. The sample ratio is ours (``MOBILITY_TRACE_SAMPLE_RATIO``).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field

from app.platform.settings.base import MobilityBaseSettings


class TracingSettings(MobilityBaseSettings):
    # The full URL traces are POSTed to (OTLP over HTTP/protobuf), e.g.
    # http://collector:4318/v1/traces. Wins over the base endpoint below, as the spec says.
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("otel_exporter_otlp_traces_endpoint")
    )
    # The collector's base URL, e.g. http://collector:4318: traces go to <base>/v1/traces.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("otel_exporter_otlp_endpoint")
    )
    # The spec's kill switch: true keeps tracing off whatever endpoint is set.
    otel_sdk_disabled: bool = Field(
        default=False, validation_alias=AliasChoices("otel_sdk_disabled")
    )
    otel_service_name: str = Field(
        default="mobility-aggregator", validation_alias=AliasChoices("otel_service_name")
    )
    # The share of traces started here that are kept (a root span's decision; a request that
    # arrives with a sampled traceparent is kept whatever this says, so a caller's trace is
    # never cut in the middle).
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)

    def otlp_traces_url(self) -> str | None:
        """Where traces are exported, or None: tracing is off."""
        if self.otel_sdk_disabled:
            return None
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        return None
