"""Start `python -m powersim` (or run_server.sh) as a real process and wait until it serves."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def server_env(tmp_path: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PORT=str(free_port()),
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite:///{tmp_path}/powersim.db",
        POWERSIM_WORKERS="1",
        POWERSIM_SIMULATION="tests.sims:fixed",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def start_server(env: dict[str, str]) -> subprocess.Popen[str]:
    return start([sys.executable, "-m", "powersim"], env)


def wait_healthy(proc: subprocess.Popen[str], port: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"server exited with {proc.returncode}:\n{out}\n{err}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                import json

                return json.loads(resp.read())  # type: ignore[no-any-return]
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("server did not answer /healthz in time")


def post(port: str, path: str) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
