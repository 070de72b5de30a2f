"""The metrics port of ``mobility worker`` and ``mobility scheduler`` (``--metrics-port``)."""

from __future__ import annotations

from app.commands.console import fail, say
from app.platform import metrics
from app.platform.settings import Settings

__all__ = ["serve_metrics_or_say_why"]


def serve_metrics_or_say_why(address: tuple[str, int], settings: Settings) -> int | None:
    """Serve the metrics port; None when it is up, otherwise the command's exit code, after
    saying why (a host beyond this one without a token, a port already taken)."""
    host, port = address
    try:
        metrics.serve_metrics(address, settings.metrics_token)
    except metrics.MetricsPortRefused as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot listen on {host}:{port} for metrics: {exc.strerror or exc}")
    say(f"metrics at http://{host}:{port}/metrics")
    return None
