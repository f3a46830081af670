"""The server as a user runs it: start-up errors, clean shutdown, and run_server.sh."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
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


# How long after the drain timeout the process may take to exit: aiohttp's wait for handlers
# (SHUTDOWN_HANDLER_GRACE_S, twice), closing Redis, SQLite and the pool, on a loaded machine.
EXIT_SLACK_S = 2.5


async def test_sigterm_exits_within_the_drain_timeout_with_a_run_in_flight(tmp_path: Path, redis_url: str) -> None:
    """A run longer than POWERSIM_DRAIN_TIMEOUT is abandoned when it runs out, once: not after
    aiohttp's wait for handlers and then again after the app's own drain (up to twice as long)."""
    drain = 2.0
    env = server_env(
        tmp_path,
        redis_url,
        POWERSIM_SIMULATION="tests.sims:very_slow",
        POWERSIM_DRAIN_TIMEOUT=str(int(drain)),
        POWERSIM_MAX_PENDING="1",
    )
    proc = start_server(env)
    try:
        await asyncio.to_thread(wait_healthy, proc, env["PORT"])
        # Two runs at once with room for one: the one refused proves the other is in flight.
        runs = [asyncio.create_task(asyncio.to_thread(post, env["PORT"], "/run-simulation")) for _ in range(2)]
        done, pending = await asyncio.wait(runs, return_when=asyncio.FIRST_COMPLETED, timeout=30)
        [refused] = done
        status, body = refused.result()
        assert status == 503, body
        assert b"queued or running" in body
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=60)
        elapsed = time.monotonic() - started
        [in_flight] = pending
        abandoned = await asyncio.wait_for(in_flight, 10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert "1 runs did not finish within 2 s and were abandoned" in err, err
    assert drain - 0.5 < elapsed < drain + EXIT_SLACK_S, (elapsed, err.splitlines())
    assert abandoned[0] == 503, abandoned  # an answer, not a dropped connection
    assert json.loads(abandoned[1]) == {"error": "the server shut down before this run finished"}


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


MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",  # duplicate Host
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX\x01: y\r\n\r\n",  # a control character in a name
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",  # a request line too long
]


def test_malformed_requests_cannot_flood_the_log(tmp_path: Path, redis_url: str) -> None:
    """Each malformed request is the client's mistake: a 400, and no ERROR line or traceback
    (aiohttp's own logging writes both for every one)."""
    env = server_env(tmp_path, redis_url)
    proc = start_server(env)
    try:
        wait_healthy(proc, env["PORT"])
        for raw in MALFORMED * 3:
            with socket.create_connection(("127.0.0.1", int(env["PORT"])), timeout=5) as sock:
                sock.sendall(raw)
                assert sock.recv(100).split(b"\r\n")[0].endswith(b" 400 Bad Request"), raw[:40]
        assert post(env["PORT"], "/run-simulation")[0] == 200  # still serving
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err, err
    assert " ERROR " not in err, err
