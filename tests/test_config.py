"""Redis and database URLs end to end: a unix socket, a non-zero db, and no credentials in errors."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from powersim.constants import LATEST_KEY
from powersim.keys import POWERSIM

from .conftest import ClientFactory
from .processes import ROOT, server_env
from .redis_server import RedisServer, find_redis_server, free_port

Client = TestClient[Any, Any]
OUTSIDE = {"active_power": 1, "reactive_power": 2}


@pytest.fixture
def unix_redis() -> Iterator[Path]:
    """A redis-server listening on a unix socket only (short path: sun_path holds 107 bytes)."""
    workdir = Path(tempfile.mkdtemp(prefix="ps-redis-"))
    sock = workdir / "r.sock"
    proc = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(unix_socket_path=str(sock), socket_timeout=5) as probe:
                    probe.ping()
                break
            except (redis.ConnectionError, FileNotFoundError):
                assert proc.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not open its socket"
                time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()


async def first_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)  # type: ignore[no-any-return]


async def pushes_and_writes_db_3(client: Client, writer: aioredis.Redis, db0: aioredis.Redis) -> None:
    """An outside SET in db 3 is pushed; a run is written to db 3 (and db 0 stays empty)."""
    async with client.ws_connect("/simulator-subscribe") as ws:
        assert (await first_json(ws))["id"] is None  # the snapshot: nothing yet
        await writer.set(LATEST_KEY, json.dumps(OUTSIDE))
        pushed = await first_json(ws)
        assert (pushed["active_power"], pushed["reactive_power"]) == (1, 2)
        resp = await client.post("/run-simulation")
        assert resp.status == 200
        result = await resp.json()
        assert await first_json(ws) == result
    stored = json.loads(await writer.get(LATEST_KEY))
    assert (stored["id"], stored["active_power"]) == (result["id"], result["active_power"])
    assert await db0.get(LATEST_KEY) is None


async def test_unix_socket_url_with_db_3_starts_pushes_and_writes_db_3(
    make_client: ClientFactory, unix_redis: Path
) -> None:
    client = await make_client(redis_url=f"unix://{unix_redis}?db=3")
    async with (
        aioredis.Redis(unix_socket_path=str(unix_redis), db=3) as writer,
        aioredis.Redis(unix_socket_path=str(unix_redis), db=0) as db0,
    ):
        await pushes_and_writes_db_3(client, writer, db0)


async def test_tcp_url_with_db_3_in_the_query_pushes_and_writes_db_3(
    make_client: ClientFactory, redis_server: RedisServer, redis_url: str
) -> None:
    client = await make_client(redis_url=f"redis://127.0.0.1:{redis_server.port}?db=3")
    async with (
        aioredis.Redis(port=redis_server.port, db=3) as writer,
        aioredis.Redis(port=redis_server.port, db=0) as db0,
    ):
        await pushes_and_writes_db_3(client, writer, db0)


def run_until_exit(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "powersim"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_bad_database_url_stops_start_up_without_its_password(tmp_path: Path) -> None:
    env = server_env(tmp_path, "redis://127.0.0.1:1/0", DATABASE_URL="mysql://admin:s3cr3t@db.example/powersim")
    done = run_until_exit(env)
    assert done.returncode == 2
    assert "bad setting: DATABASE_URL must look like sqlite:///" in done.stderr
    assert "a mysql:// URL" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    "url",
    ["redis://user:s3cr3t@127.0.0.1:{port}/0", "redis://127.0.0.1:{port}/0?password=s3cr3t",
     "unix:///nonexistent/r.sock?db=2&password=s3cr3t"],
)  # fmt: skip
def test_unreachable_redis_is_reported_without_its_password(tmp_path: Path, url: str) -> None:
    done = run_until_exit(server_env(tmp_path, url.format(port=free_port())))
    assert done.returncode == 1
    assert "cannot reach Redis at" in done.stderr
    assert "***" in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout


async def test_the_watcher_listens_on_the_db_of_the_url(make_client: ClientFactory, redis_server: RedisServer) -> None:
    """The keyspace channel names the db redis-py selected, for the query form too."""
    client = await make_client(redis_url=f"redis://127.0.0.1:{redis_server.port}/1?db=3")
    assert client.app[POWERSIM].watcher.channel == f"__keyspace@3__:{LATEST_KEY}"
