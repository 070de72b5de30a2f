"""Start the servers under test as process groups, wait until they serve, stop them for sure.

Also reads CPU time from /proc, so each run can say where the CPU went per request: the server
processes, the PostgreSQL backends serving the bench database, redis-server, and the machine
as a whole (anything else running at the same time shows up there); and the resident memory
of each process of a server. :class:`RedisServer` is a private, throw-away redis-server the
outage scenario can stop and start without touching the shared one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from bench import config
from bench.progress import say
from bench.targets import Target

_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(slots=True)
class Server:
    target: Target
    port: int
    log_path: Path
    # How progress lines and the report call it; the target's key unless given.
    name: str = ""
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        return self.name or self.target.key

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.target.path

    def start(self, *, workers: int, env: dict[str, str], cwd: Path) -> None:
        command = self.target.uvicorn_command(self.port, workers)
        say(f"starting {self.key}: {' '.join(command[1:])}")
        log = self.log_path.open("wb")
        self._log = log
        # A session of its own: the supervisor and its workers form one process group that
        # stop() can signal as a whole, and Ctrl-C in the terminal reaches only this script.
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, *, workers: int, timeout_s: float = 120.0) -> None:
        """Until the health path answers and every worker has logged its startup as complete."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.key} server exited with {self.process.returncode}:\n"
                        + self.log_tail()
                    )
                started = self.log_path.read_bytes().count(b"Application startup complete.")
                if started >= workers:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(self.base_url + self.target.health_path).status_code == 200:
                            say(f"{self.key} ready on {self.base_url}")
                            return
                time.sleep(0.2)
        raise RuntimeError(f"{self.key} not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            say(f"stopping {self.key}")
            # SIGTERM lets uvicorn shut its workers down and run the lifespan exit (pools
            # closed); a group that is still there after the grace period is killed.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                say(f"{self.key} did not stop in {timeout_s:.0f}s; killing it")
        # Workers may outlive the supervisor: always clear the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
        self.process = None


# --- CPU accounting -------------------------------------------------------------------------


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after its last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def _cpu_seconds(fields: list[str]) -> float:
    # utime and stime are fields 14 and 15 of /proc/<pid>/stat (11 and 12 after the name).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _cmdline(pid: str) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class CpuSample:
    group: float  # the server's process group
    postgres: float  # backends connected to the bench database
    redis: float  # the whole redis-server
    machine_busy: float  # all CPUs, everything
    machine_total: float
    monotonic: float

    def minus(self, earlier: CpuSample) -> CpuSample:
        return CpuSample(
            group=self.group - earlier.group,
            postgres=self.postgres - earlier.postgres,
            redis=self.redis - earlier.redis,
            machine_busy=self.machine_busy - earlier.machine_busy,
            machine_total=self.machine_total - earlier.machine_total,
            monotonic=self.monotonic - earlier.monotonic,
        )


def _machine_cpu() -> tuple[float, float]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user .. steal; guest time is already counted in user
    return (total - idle) / _TICKS, total / _TICKS


def cpu_sample(pgid: int, database: str) -> CpuSample:
    group = postgres = redis = 0.0
    marker = f" {database} "
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fields = _stat_fields(pid)
        if fields is None:
            continue
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5: process group
            group += _cpu_seconds(fields)
        elif comm.startswith("postgres") and marker in _cmdline(pid):
            postgres += _cpu_seconds(fields)
        elif comm.startswith("redis-server"):
            redis += _cpu_seconds(fields)
    busy, total = _machine_cpu()
    return CpuSample(group, postgres, redis, busy, total, time.monotonic())


# --- memory ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    pid: int
    role: str  # "supervisor", "worker", "resource tracker" or "other"
    rss_kib: int  # VmRSS now
    peak_kib: int  # VmHWM: the largest resident set the process has had

    def to_json(self) -> dict[str, int | str]:
        return {
            "pid": self.pid,
            "role": self.role,
            "rss_kib": self.rss_kib,
            "peak_kib": self.peak_kib,
        }


def _status_kib(pid: str) -> tuple[int, int] | None:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])  # always in kB (KiB)
    if "VmRSS" not in values:
        return None  # a zombie, or a kernel thread
    return values["VmRSS"], values.get("VmHWM", values["VmRSS"])


def group_memory(pgid: int) -> list[ProcessMemory]:
    """Resident memory of every process in the server's process group: uvicorn's supervisor
    (the group leader) and its worker processes."""
    found: list[ProcessMemory] = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fields = _stat_fields(pid)
        if fields is None or int(fields[2]) != pgid:
            continue
        memory = _status_kib(pid)
        if memory is None:
            continue
        cmdline = _cmdline(pid)
        if int(pid) == pgid:
            role = "supervisor"
        elif "resource_tracker" in cmdline:
            role = "resource tracker"  # multiprocessing's helper, started with the workers
        elif "multiprocessing" in cmdline:
            role = "worker"  # uvicorn starts its workers with multiprocessing's spawn
        else:
            role = "other"
        found.append(ProcessMemory(int(pid), role, memory[0], memory[1]))
    return sorted(found, key=lambda m: m.pid)


# --- a private redis-server -----------------------------------------------------------------


@dataclass(slots=True)
class RedisServer:
    """A redis-server of the benchmark's own on 127.0.0.1:``port``, no persistence: stopping it
    loses its data, and starting it again gives an empty server, as after a crash."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.starts += 1
        log = self.directory / f"redis-{self.port}-{self.starts}.log"
        command = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(log),
            "--daemonize", "no",
        ]  # fmt: skip
        say(f"starting a private redis-server on port {self.port}")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {log}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not answer in {timeout_s:g}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        process = self.process
        if process is None:
            return
        say(f"stopping the private redis-server on port {self.port}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        self.process = None


def server_env(database_url: str, redis_prefix: str, **extra: str) -> dict[str, str]:
    """The environment of an API server a benchmark starts: its own stores, production mode with
    a signing key of its own, no background sync or demo feeds, and nothing inherited from the
    caller's MOBILITY_*/BENCH_* (make exports the demo database's URL); ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOBILITY_", "BENCH_"))}
    env.update(
        MOBILITY_DATABASE_URL=database_url,
        MOBILITY_REDIS_URL=config.REDIS_URL,
        MOBILITY_REDIS_PREFIX=redis_prefix,
        MOBILITY_BACKGROUND_SYNC="false",
        MOBILITY_DEMO_FEEDS="false",
        MOBILITY_ENVIRONMENT="production",
        # Production refuses to start without a signing key (app/accounts): one per run.
        MOBILITY_JWT_SECRET=secrets.token_hex(32),
        MOBILITY_SECRETS_KEYS=config.SECRETS_KEY,
        # Its workers count metrics into one directory, as under `mobility serve --workers`
        # (app/platform/metrics.py): the hot path measured is the one production runs.
        PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="bench-metrics-"),
        PYTHONPATH=os.pathsep.join(
            p for p in (str(config.PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        ),
    )
    env.update(extra)
    return env
