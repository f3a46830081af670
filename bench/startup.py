"""Target 6: process start to /healthz 200 (pool warm) against importing pandapower and
running one simulation in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .figures import Figure, median_of, ratio_figure
from .harness import ROOT, server_env, wait_http

RUNS = 3


def startup(redis_url: str, db_dir: Path, workers: int) -> Figure:
    baseline = median_of(RUNS, _import_and_run)
    server = median_of(RUNS, lambda: _serve_until_healthy(redis_url, db_dir, workers))
    return ratio_figure("start-up to /healthz 200", server, baseline, "s",
                        "import pandapower + one run, fresh interpreter", at_most=1.5,
                        note=f"{workers} workers warmed in parallel")  # fmt: skip


def _import_and_run() -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import test_sim; test_sim.run_simulation()"], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    return time.monotonic() - start


def _serve_until_healthy(redis_url: str, db_dir: Path, workers: int) -> float:
    env = server_env(redis_url, db_dir, POWERSIM_WORKERS=str(workers))
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "powersim"], cwd=ROOT, env=env)
    try:
        return wait_http(f"http://127.0.0.1:{env['PORT']}/healthz") - start
    finally:
        proc.terminate()
        proc.wait(30)
