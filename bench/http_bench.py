"""Targets 1-3: GET throughput, GET latency under POST load, POST throughput at saturation."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from .figures import Figure, median_of, ratio_figure
from .harness import ROOT, hello, powersim, server_env, wrk

GET_CONNECTIONS = 50
GET_SECONDS = 5
RUNS = 3


def get_throughput(redis_url: str, db_dir: Path) -> list[Figure]:
    """GET /active-power and /reactive-power against a bare aiohttp hello handler, same wrk settings."""
    with powersim(server_env(redis_url, db_dir, POWERSIM_WORKERS="1", POWERSIM_SIMULATION="tests.sims:fixed")) as app:
        urllib.request.urlopen(urllib.request.Request(f"{app.url}/run-simulation", method="POST")).read()
        with hello() as bare:
            rates: dict[str, list[float]] = {"hello": [], "active": [], "reactive": []}
            for _ in range(RUNS):  # interleaved, so drift on a shared machine hits all alike
                rates["hello"].append(
                    wrk(f"{bare.url}/hello", connections=GET_CONNECTIONS, seconds=GET_SECONDS).requests_per_s
                )
                rates["active"].append(
                    wrk(f"{app.url}/active-power", connections=GET_CONNECTIONS, seconds=GET_SECONDS).requests_per_s
                )
                rates["reactive"].append(
                    wrk(f"{app.url}/reactive-power", connections=GET_CONNECTIONS, seconds=GET_SECONDS).requests_per_s
                )
    baseline = statistics.median(rates["hello"])
    return [
        ratio_figure(f"GET {path} throughput", statistics.median(rates[key]), baseline, "req/s",
                     "bare aiohttp JSON handler", at_least=0.7)
        for key, path in (("active", "/active-power"), ("reactive", "/reactive-power"))
    ]  # fmt: skip


def get_latency_under_load(redis_url: str, db_dir: Path) -> Figure:
    """GET p99 idle, then while POSTs keep the pool busy: the event loop must not be blocked.

    One worker on this 2-core machine: with both cores busy simulating, the figure would measure
    CPU contention between the server process and the load generators, not a blocked loop.
    """
    env = server_env(redis_url, db_dir, POWERSIM_WORKERS="1")
    with powersim(env) as app:
        urllib.request.urlopen(urllib.request.Request(f"{app.url}/run-simulation", method="POST")).read()
        idle, busy = [], []
        for _ in range(RUNS):
            idle.append(wrk(f"{app.url}/active-power", connections=4, seconds=GET_SECONDS).p99_ms)
            load = threading.Thread(
                target=wrk,
                args=(f"{app.url}/run-simulation",),
                kwargs={"connections": 4, "seconds": GET_SECONDS + 2, "post": True},
            )
            load.start()
            time.sleep(1)
            busy.append(wrk(f"{app.url}/active-power", connections=4, seconds=GET_SECONDS).p99_ms)
            load.join()
    return ratio_figure("GET p99 with the pool saturated by POSTs", statistics.median(busy), statistics.median(idle),
                        "ms", "GET p99 idle", at_most=2.0, note="1 worker (see bench/http_bench.py)")  # fmt: skip


def post_throughput(redis_url: str, db_dir: Path, workers: int) -> Figure:
    """POST /run-simulation at saturation against calling the simulation in a pool of the same size."""
    direct = median_of(RUNS, lambda: _direct_pool_rate(workers))
    env = server_env(redis_url, db_dir, POWERSIM_WORKERS=str(workers))
    with powersim(env) as app:
        api = median_of(
            RUNS,
            lambda: wrk(f"{app.url}/run-simulation", connections=2 * workers + 2, seconds=10, post=True).requests_per_s,
        )
    return ratio_figure("POST /run-simulation throughput at saturation", api, direct, "runs/s",
                        f"run_network() in a bare pool of {workers}", at_least=0.9)  # fmt: skip


def _direct_pool_rate(workers: int) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "bench.direct_pool", str(workers), "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1])
