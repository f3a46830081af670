"""The server as a user runs it: start-up errors, clean shutdown, and run_server.sh."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from .processes import ROOT, post, server_env, start, start_server, wait_healthy
from .redis_server import free_port

pytestmark = pytest.mark.slow


def run_to_exit(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "powersim"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_bad_setting_stops_with_one_line(tmp_path: Path, redis_url: str) -> None:
    done = run_to_exit(server_env(tmp_path, redis_url, POWERSIM_WORKERS="many"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "powersim: bad setting: POWERSIM_WORKERS must be an integer, got 'many'"
    ]


def test_unreachable_redis_names_the_url_without_password(tmp_path: Path) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    done = run_to_exit(server_env(tmp_path, url))
    assert done.returncode == 1
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/0" in done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module:run", "cannot load no_such_module:run: ModuleNotFoundError"),
        ("tests.sims:missing", "cannot load tests.sims:missing: AttributeError"),
        ("tests.sims:NOT_CALLABLE", "cannot load tests.sims:NOT_CALLABLE: TypeError"),
    ],
)
def test_bad_simulation_stops_startup(tmp_path: Path, redis_url: str, spec: str, message: str) -> None:
    done = run_to_exit(server_env(tmp_path, redis_url, POWERSIM_SIMULATION=spec))
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


async def test_sigterm_closes_websockets_with_1001_and_exits_cleanly(tmp_path: Path, redis_url: str) -> None:
    env = server_env(tmp_path, redis_url, POWERSIM_SIMULATION="test_sim:run_simulation", POWERSIM_WORKERS="2")
    proc = start_server(env)
    try:
        await asyncio.to_thread(wait_healthy, proc, env["PORT"])
        for _ in range(3):
            status, body = await asyncio.to_thread(post, env["PORT"], "/run-simulation")
            assert status == 200, body
        base = f"http://127.0.0.1:{env['PORT']}"
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"{base}/simulator-subscribe") as ws,
            session.ws_connect(f"{base}/graphql", protocols=["graphql-transport-ws"]) as gql,
        ):
            snapshot = json.loads((await ws.receive(timeout=5)).data)
            assert snapshot["id"] == 3
            await gql.send_json({"type": "connection_init"})
            assert (await gql.receive_json(timeout=5))["type"] == "connection_ack"
            query = {"query": "subscription { simulationResults { id } }"}
            await gql.send_json({"id": "1", "type": "subscribe", "payload": query})
            assert (await gql.receive_json(timeout=5))["payload"]["data"] == {"simulationResults": {"id": "3"}}
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            for socket in (ws, gql):  # both kinds of websocket are told the server is going away
                closing = await socket.receive(timeout=10)
                assert closing.type == aiohttp.WSMsgType.CLOSE
                assert socket.close_code == 1001
        _, err = await asyncio.to_thread(proc.communicate, timeout=20)
        assert time.monotonic() - started < 10, "an open websocket held the shutdown"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    # pandapower warns about numba on every power flow; the workers filter it out.
    assert "numba" not in err
    assert "2 simulation workers ready" in err


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_run_server_script_serves_and_cleans_up(tmp_path: Path) -> None:
    """With no REDIS_URL it uses 127.0.0.1:6479, starting a Redis there when none runs.

    That may be a developer's own Redis, so this test never writes the key (no POST; the
    empty temporary database gives start-up nothing to restore).
    """
    redis_was_running = port_open(6479)
    env = server_env(tmp_path, "unused")
    del env["REDIS_URL"]
    proc = start(["./run_server.sh"], env)
    try:
        health = wait_healthy(proc, env["PORT"], timeout=240)
        assert health == {"status": "ok", "redis": "ok", "database": "ok", "workers": 1}
        assert port_open(6479)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    if not redis_was_running:
        assert "on 127.0.0.1:6479" in err
        assert not port_open(6479), "run_server.sh left its Redis running"
