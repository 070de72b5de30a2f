"""Side by side: the baseline and the GraphQL API from two source trees, in the same minutes.

    python -m bench.ab OLD_TREE NEW_TREE [--seconds 10] [--rounds 2] [--target graphql|apq|down]
                      [--new-env KEY=VALUE ...] [--otlp-sink]

Full runs of ``bench.run`` minutes apart drift on a shared machine (docs/performance.md); to
measure one change, start the baseline, the API from a checkout of the previous commit
(``git worktree add /tmp/old HEAD~1``) and the API from this tree together, and load them in
interleaved rounds. Prints req/s, p99 and CPU per request (API processes, Redis, PostgreSQL)
per round and each tree's throughput relative to the baseline. Uses the bench fleet as
``bench.run`` left it (run that first).

The two trees may be the same one under two configurations: ``--new-env`` sets variables for
the new server only, and ``--otlp-sink`` starts a local OpenTelemetry collector stand-in (it
accepts every OTLP/HTTP export and counts the bytes) and points the new server's traces at it,
which measures what tracing with an exporter costs (docs/operations-otel-traces.md).
"""

from __future__ import annotations

import argparse
import http.server
import threading
from pathlib import Path
from typing import Any

from bench import config
from bench.fleet import query_points
from bench.load import ensure_wrk
from bench.measure import LoadPlan, measure
from bench.run import _server_env, _write_points
from bench.servers import Server, free_port
from bench.targets import BASELINE, GRAPHQL, GRAPHQL_APQ, GRAPHQL_REDIS_DOWN, Target

_TARGETS = {"graphql": GRAPHQL, "apq": GRAPHQL_APQ, "down": GRAPHQL_REDIS_DOWN}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--target", choices=sorted(_TARGETS), default="graphql")
    parser.add_argument("--new-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--otlp-sink", action="store_true")
    args = parser.parse_args()
    new_env = dict(item.split("=", 1) for item in args.new_env)
    sink = OtlpSink() if args.otlp_sink else None
    if sink is not None:
        new_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.url
    target = _TARGETS[args.target]
    run_dir = config.RESULTS_DIR / "ab"
    run_dir.mkdir(parents=True, exist_ok=True)
    points, _ = _write_points(
        query_points(10_000, config.DEFAULT_SEED), config.DEFAULT_SEED, run_dir
    )
    plan = LoadPlan(
        wrk=ensure_wrk(),
        points=points,
        run_dir=run_dir,
        connections=16,
        threads=2,
        timeout_s=30.0,
        duration_s=args.seconds,
        warmup_s=2.0,
        settle_s=1.0,
    )
    servers: dict[str, tuple[Server, Target]] = {}
    for name, tree, kind in (
        ("baseline", args.new, BASELINE),
        ("old", args.old, target),
        ("new", args.new, target),
    ):
        env = _server_env()
        env["PYTHONPATH"] = str(tree.resolve())
        if kind is GRAPHQL_REDIS_DOWN:
            env["MOBILITY_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens
        if name == "new":
            env.update(new_env)
        server = Server(kind, free_port(), run_dir / f"{name}.log", name=name)
        server.start(workers=2, env=env, cwd=tree.resolve())
        servers[name] = (server, kind)
    try:
        for server, _ in servers.values():
            server.wait_ready(workers=2)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, (server, kind) in servers.items():
                results[name].append(measure(plan, server, kind, key=name))
        for name, rounds in results.items():
            cells = [
                f"{m['wrk']['rps']:.0f} req/s p99 {m['wrk']['latency_ms']['p99']:.1f} ms "
                f"cpu {m['cpu']['server_ms_per_request']:.2f}"
                f"+redis {m['cpu']['redis_ms_per_request']:.2f}"
                f"+pg {m['cpu']['postgres_ms_per_request']:.2f}"
                for m in rounds
            ]
            print(f"{name:8} " + " | ".join(cells))
        base = sum(m["wrk"]["rps"] for m in results["baseline"])
        for name in ("old", "new"):
            ratio = sum(m["wrk"]["rps"] for m in results[name]) / base
            print(f"{name} / baseline throughput: {ratio:.3f}")
        if sink is not None:
            print(f"otlp sink: {sink.exports} exports, {sink.bytes / 1e6:.1f} MB of spans")
    finally:
        for server, _ in servers.values():
            server.stop()
        if sink is not None:
            sink.close()


class OtlpSink:
    """An OTLP/HTTP receiver that accepts and drops every export, on a thread of its own."""

    def __init__(self) -> None:
        sink = self
        self.exports = 0
        self.bytes = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the standard library's name
                length = int(self.headers.get("content-length") or 0)
                sink.bytes += len(self.rfile.read(length))
                sink.exports += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    main()
