"""Processes the benchmarks need: Redis, the powersim server, a bare aiohttp server, wrk."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import processes
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Server:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def wait_http(url: str, timeout: float = 120) -> float:
    """Poll until `url` answers 200; return the loop time at which it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return time.monotonic()
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer in {timeout} s")


@contextmanager
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def server_env(redis_url: str, db_dir: Path, **extra: str) -> dict[str, str]:
    """The test suite's server environment, with the default simulation and quiet logs."""
    return processes.server_env(
        db_dir, redis_url, **({"POWERSIM_SIMULATION": "test_sim:run_network", "LOG_LEVEL": "WARNING"} | extra)
    )


@contextmanager
def powersim(env: dict[str, str]) -> Iterator[Server]:
    proc = subprocess.Popen([sys.executable, "-m", "powersim"], cwd=ROOT, env=env)
    server = Server(int(env["PORT"]), proc)
    try:
        wait_http(f"{server.url}/healthz")
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@contextmanager
def hello() -> Iterator[Server]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.hello_server", str(port)], cwd=ROOT)
    server = Server(port, proc)
    try:
        wait_http(f"{server.url}/hello")
        yield server
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p99_ms: float
    non_2xx: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, *, connections: int, seconds: int, post: bool = False) -> WrkResult:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if post:
        args += ["-s", str(ROOT / "bench" / "post.lua")]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return WrkResult(
        requests_per_s=rate,
        p99_ms=float(p99.group(1)) * _UNITS[p99.group(2)] if p99 else float("nan"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )
