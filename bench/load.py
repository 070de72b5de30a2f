"""Load generation with wrk: install it, script it, run it, read its numbers.

wrk is a closed-loop generator: each connection sends its next request when the previous answer
arrives, so throughput is what the server sustains at that concurrency and the latency
percentiles are per request (wrk's own HdrHistogram-style buckets, microsecond resolution).
The Lua script builds each POST body (or, for a GET target such as a vector tile, each path)
from a list of requests written beforehand, one line of fields each (``lat lon``, ``z x y``), so
every server is asked exactly the same things in the same order; it checks every answer's
status, samples bodies for errors and counts the body bytes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.progress import say
from bench.targets import Target

# Check every Nth answer's body (a cheap prefix test); the status of every answer is checked.
SAMPLE_EVERY = 50
# Where the latency distribution is read, HdrHistogram-style: dense towards the tail.
PERCENTILES: tuple[float, ...] = (
    0,
    10,
    20,
    30,
    40,
    50,
    55,
    60,
    65,
    70,
    75,
    77.5,
    80,
    82.5,
    85,
    87.5,
    90,
    91.25,
    92.5,
    93.75,
    95,
    96,
    97,
    97.5,
    98,
    98.5,
    99,
    99.25,
    99.5,
    99.75,
    99.9,
    99.95,
    99.99,
    100,
)

_LUA = r"""
-- Written by bench/load.py; one request per line of the list, in the same order for every
-- target: a POST body (lat lon) or a GET path (z x y) filled from the line's fields.
local method = "__METHOD__"
if method == "POST" then
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

local template = [==[__TEMPLATE__]==]
local ok_prefix = [==[__PREFIX__]==]
local json_answers = __JSON__
local sample_every = __SAMPLE_EVERY__
local percentiles = {__PERCENTILES__}
local unpack_fields = table.unpack or unpack

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local lines = {}
local n, i = 0, 0
responses, bad_status, checked, bad_body, body_bytes, first_bad = 0, 0, 0, 0, 0, ""

function init(args)
  for line in io.lines(args[1]) do
    local fields = {}
    for field in line:gmatch("%S+") do fields[#fields + 1] = field end
    if #fields > 0 then
      n = n + 1
      lines[n] = fields
    end
  end
  -- Threads start at different places in the list, so they do not ask the same thing at once.
  i = (tid * math.floor(n / 8)) % n
end

function request()
  i = i % n + 1
  local filled = string.format(template, unpack_fields(lines[i]))
  if method == "GET" then
    return wrk.format("GET", filled)
  end
  return wrk.format(nil, nil, nil, filled)
end

local function wrong(body)
  if json_answers then
    return body:sub(1, #ok_prefix) ~= ok_prefix or body:find('"errors"', 1, true)
  end
  -- A binary answer (a vector tile) that is a JSON document is an error sent with a 2xx.
  return body:sub(1, 1) == "{"
end

function response(status, headers, body)
  responses = responses + 1
  body_bytes = body_bytes + #body
  local bad = status < 200 or status > 299
  if bad then bad_status = bad_status + 1 end
  if bad or responses % sample_every == 0 then
    checked = checked + 1
    if bad or wrong(body) then
      bad_body = bad_body + 1
      if first_bad == "" then first_bad = status .. " " .. body:sub(1, 300) end
    end
  end
end

function done(summary, latency, requests)
  local s = {responses = 0, bad_status = 0, checked = 0, bad_body = 0, body_bytes = 0}
  local example = ""
  for _, t in ipairs(threads) do
    for k, _ in pairs(s) do s[k] = s[k] + t:get(k) end
    if example == "" then example = t:get("first_bad") end
  end
  local e = summary.errors
  -- The latency distribution for the chart: [percentile, microseconds] pairs.
  local dist = {}
  for _, p in ipairs(percentiles) do
    dist[#dist + 1] = string.format("[%s,%.1f]", p, latency:percentile(p))
  end
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%.1f,"mean":%.1f,"stdev":%.1f,"max":%.1f,' ..
    '"p50":%.1f,"p75":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f},' ..
    '"responses":%d,"bad_status":%d,"checked":%d,"bad_body":%d,"body_bytes":%d,' ..
    '"example":"%s",' ..
    '"distribution_us":[%s]}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    s.responses, s.bad_status, s.checked, s.bad_body, s.body_bytes,
    (example:gsub('[\\"]', ''):gsub('%c', ' ')), table.concat(dist, ",")))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    bytes: int
    errors: dict[str, int]
    latency_ms: dict[str, float]
    # (percentile, ms) pairs at PERCENTILES: what the latency chart draws.
    distribution_ms: list[tuple[float, float]]
    responses: int
    bad_status: int
    checked: int
    bad_body: int
    example: str
    # Bytes of the response bodies (headers not counted), over every response.
    body_bytes: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_total(self) -> int:
        return sum(self.errors.values()) + self.bad_status + self.bad_body

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "duration_s": self.duration_s,
            "bytes": self.bytes,
            "rps": self.rps,
            "errors": self.errors,
            "latency_ms": self.latency_ms,
            "distribution_ms": [list(pair) for pair in self.distribution_ms],
            "responses": self.responses,
            "bad_status": self.bad_status,
            "checked": self.checked,
            "bad_body": self.bad_body,
            "body_bytes": self.body_bytes,
            "example": self.example,
        }


def ensure_wrk() -> str:
    """wrk's path, installing the Debian package if it is missing (the machine is ours, root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("wrk is not installed: run `sudo apt-get install -y wrk`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say("installing wrk (apt-get install -y wrk)")
    install = ["apt-get", "install", "-y", "-qq", "wrk"]
    # apt's output goes to stderr with the progress: stdout carries only the target lines.
    quiet: dict[str, Any] = {"env": env, "stdout": sys.stderr, "stdin": subprocess.DEVNULL}
    if subprocess.run(install, check=False, **quiet).returncode != 0:
        # A fresh machine has no package lists yet.
        say("apt-get update, then installing wrk again")
        subprocess.run(["apt-get", "update", "-qq"], check=True, **quiet)
        subprocess.run(install, check=True, **quiet)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still missing after apt-get install")
    return found


def wrk_version(wrk: str) -> str:
    # `wrk -v` prints its version line and exits non-zero.
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    line = (out.stdout or out.stderr).strip().splitlines()
    return line[0].split(" Copyright")[0].strip() if line else "unknown"


def write_script(target: Target, directory: Path) -> Path:
    template = target.path_template if target.method == "GET" else target.body_template
    script = (
        _LUA.replace("__METHOD__", target.method)
        .replace("__TEMPLATE__", template)
        .replace("__PREFIX__", target.ok_prefix)
        .replace("__JSON__", "true" if target.json_answers else "false")
        .replace("__SAMPLE_EVERY__", str(SAMPLE_EVERY))
        .replace("__PERCENTILES__", ", ".join(f"{p:g}" for p in PERCENTILES))
    )
    path = directory / f"{target.key}.lua"
    path.write_text(script)
    return path


def run_wrk(
    wrk: str,
    *,
    url: str,
    script: Path,
    points: Path,
    duration_s: float,
    connections: int,
    threads: int,
    timeout_s: float,
    log: Path,
) -> WrkResult:
    command = [
        wrk,
        # wrk needs at least one connection per thread.
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(duration_s))}s",
        # Far above any latency we expect: a slow answer is measured, not counted as lost.
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
        f"--script={script}",
        url,
        "--",
        str(points),
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=duration_s + timeout_s + 60
    )
    log.write_text(f"$ {' '.join(command)}\n{proc.stdout}\n{proc.stderr}")
    match = re.search(r"^BENCH_RESULT (\{.*\})$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}); see {log}\n{proc.stderr[-2000:]}")
    raw = orjson.loads(match.group(1))
    return WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        bytes=raw["bytes"],
        errors=raw["errors"],
        latency_ms={k: v / 1000.0 for k, v in raw["latency_us"].items()},
        distribution_ms=[(float(p), v / 1000.0) for p, v in raw["distribution_us"]],
        responses=raw["responses"],
        bad_status=raw["bad_status"],
        checked=raw["checked"],
        bad_body=raw["bad_body"],
        example=raw["example"],
        body_bytes=raw["body_bytes"],
    )
