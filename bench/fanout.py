"""Target 5: from an outside SET to the last of N websocket subscribers; memory per subscriber."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.redis_server import RedisServer

from .figures import Figure
from .harness import ROOT, powersim, server_env

ROUNDS = 20
CLIENT_PROCESSES = 2  # the clients' own loops must not be the bottleneck being measured


def fanout(redis: RedisServer, db_dir: Path, subscribers: int, limit_ms: float) -> tuple[Figure, float]:
    env = server_env(redis.url, db_dir, POWERSIM_WORKERS="1", POWERSIM_SIMULATION="tests.sims:fixed")
    with powersim(env) as app:
        server = psutil.Process(app.proc.pid)
        rss_before = server.memory_info().rss
        per_process = subscribers // CLIENT_PROCESSES
        clients = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.fanout_client",
                    "127.0.0.1",
                    str(app.port),
                    str(per_process),
                    str(ROUNDS),
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(CLIENT_PROCESSES)
        ]
        for client in clients:
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "ready"
        time.sleep(1)
        per_subscriber_kib = (server.memory_info().rss - rss_before) / subscribers / 1024
        writer = redis.client()
        latencies = []
        cpu_before = sum(server.cpu_times()[:2])
        for round_no in range(ROUNDS):
            sent = time.time()
            writer.set("powersim:latest", json.dumps({"active_power": round_no + 0.5, "reactive_power": 1.0}))
            last = max(json.loads(c.stdout.readline())["last"] for c in clients)  # type: ignore[union-attr]
            latencies.append((last - sent) * 1000)
            time.sleep(0.2)
        server_cpu_ms = (sum(server.cpu_times()[:2]) - cpu_before) / ROUNDS * 1000
        for client in clients:
            client.wait(30)
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
    figure = Figure(
        name=f"SET to the last of {subscribers} websocket subscribers, p99 of {ROUNDS}",
        measured=p99, baseline=limit_ms, unit="ms", baseline_label="target (absolute)",
        target=f"<= {limit_ms:.0f} ms", ratio=p99 / limit_ms, passed=p99 <= limit_ms,
        note=f"median {statistics.median(latencies):.1f} ms; server CPU {server_cpu_ms:.0f} ms a push",
    )  # fmt: skip
    return figure, per_subscriber_kib
