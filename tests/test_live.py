"""Live updates: keyspace watcher, hub and /simulator-subscribe, against real Redis and sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from powersim.constants import LATEST_KEY, MAX_VALUE_BYTES, SUBSCRIBER_QUEUE
from powersim.keys import HUB, POWERSIM

from .conftest import ClientFactory
from .redis_server import RedisServer
from .waiting import eventually

Client = TestClient[Any, Any]
EMPTY = {
    "id": None,
    "active_power": None,
    "reactive_power": None,
    "launched_at": None,
    "status": None,
    "network": None,
    "inputs": None,
}


async def next_json(ws: aiohttp.ClientWebSocketResponse, wait: float = 5) -> dict[str, Any]:
    msg = await ws.receive(timeout=wait)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)  # type: ignore[no-any-return]


async def assert_silent(ws: aiohttp.ClientWebSocketResponse, seconds: float = 0.3) -> None:
    try:
        msg = await ws.receive(timeout=seconds)
    except TimeoutError:
        return
    pytest.fail(f"unexpected message {msg}")


async def write(client: Client, redis_client: aioredis.Redis, raw: str | bytes) -> None:
    """SET the key from outside, then wait for the watcher to read it (it coalesces fast writes)."""
    watcher = client.app[POWERSIM].watcher
    mark = watcher.reads_started  # a read already in flight now does not count
    await redis_client.set(LATEST_KEY, raw)
    async with asyncio.timeout(5):
        await watcher.wait_for_read_after(mark)


def value(p: float, q: float = 0.5, **extra: Any) -> str:
    return json.dumps({"active_power": p, "reactive_power": q} | extra)


async def test_snapshot_before_any_result_has_null_values(client: Client) -> None:
    async with client.ws_connect("/simulator-subscribe") as ws:
        assert await next_json(ws) == EMPTY
        await assert_silent(ws)


async def test_snapshot_is_the_current_result(client: Client) -> None:
    result = await (await client.post("/run-simulation")).json()
    async with client.ws_connect("/simulator-subscribe") as ws:
        assert await next_json(ws) == result
        await assert_silent(ws)


def fixed_run(result: dict[str, Any]) -> dict[str, Any]:
    """A run of tests.sims:fixed as every client sees it: it takes no inputs, so they are null."""
    return {
        "id": result["id"],
        "active_power": 0.1,
        "reactive_power": 0.05,
        "launched_at": result["launched_at"],
        "status": "converged",
        "network": "seed",
        "inputs": None,
    }


async def test_a_run_reaches_every_subscriber_once(client: Client) -> None:
    async with client.ws_connect("/simulator-subscribe") as one, client.ws_connect("/simulator-subscribe") as two:
        assert await next_json(one) == EMPTY
        assert await next_json(two) == EMPTY
        result = await (await client.post("/run-simulation")).json()
        assert result == fixed_run(result)
        assert list(result) == list(EMPTY)  # the compact form's keys, in order
        assert await next_json(one) == result
        assert await next_json(two) == result
        await assert_silent(one)
        await assert_silent(two)


async def test_outside_writer_is_pushed_and_served(client: Client, redis_client: aioredis.Redis) -> None:
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        await redis_client.set(LATEST_KEY, value(0.25, 0.125, comment="dropped"))
        assert await next_json(ws) == EMPTY | {"active_power": 0.25, "reactive_power": 0.125}
        assert await (await client.get("/active-power")).json() == {
            "id": None,
            "active_power": 0.25,
            "launched_at": None,
        }
        assert (await (await client.get("/reactive-power")).json())["reactive_power"] == 0.125


async def test_an_outside_writers_status_and_inputs_are_pushed(client: Client, redis_client: aioredis.Redis) -> None:
    """A script that runs its own simulation may say which inputs it used, under its own names."""
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        inputs = {"load_p_mw": 2, "wind_speed": -1.5e-3}
        await redis_client.set(LATEST_KEY, value(0.25, 0.125, status="converged", inputs=inputs, message="kept out"))
        assert await next_json(ws) == EMPTY | {
            "active_power": 0.25,
            "reactive_power": 0.125,
            "status": "converged",
            "network": None,
            "inputs": {"load_p_mw": 2.0, "wind_speed": -0.0015},
        }
        await redis_client.set(LATEST_KEY, value(0.5, status=None, inputs=None))
        assert await next_json(ws) == EMPTY | {"active_power": 0.5, "reactive_power": 0.5}
        assert await (await client.get("/active-power")).json() == {
            "id": None,
            "active_power": 0.5,
            "launched_at": None,
        }


BAD_VALUES = [
    b"not json",
    b"",
    b"[0.25, 0.125]",
    b'"a string"',
    b"42",
    b'{"active_power": "0.25", "reactive_power": 0.125}',
    b'{"active_power": NaN, "reactive_power": 0.125}',
    b'{"active_power": Infinity, "reactive_power": 0.125}',
    b'{"active_power": 1e400, "reactive_power": 0.125}',
    b'{"active_power": 0.25}',
    b'{"reactive_power": 0.125}',
    b'{"active_power": true, "reactive_power": 0.125}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "id": "seven"}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "launched_at": "tuesday"}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "pad": "' + b"x" * (4 * MAX_VALUE_BYTES) + b'"}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "status": "not_converged"}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "status": "failed"}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "inputs": [0.1, 0.05]}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "inputs": {"load_p_mw": NaN}}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "inputs": {"load_p_mw": "0.1"}}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "inputs": {"load_p_mw": false}}',
    b'{"active_power": 0.25, "reactive_power": 0.125, "inputs": {"' + b"n" * 65 + b'": 1}}',
]


async def test_bad_outside_values_are_rejected_and_pushes_continue(
    client: Client, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="powersim.watcher")
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        for n, bad in enumerate(BAD_VALUES, start=1):
            await write(client, redis_client, bad)
            await write(client, redis_client, value(n))
            # The bad value was never pushed: the next message is the good one after it.
            assert (await next_json(ws))["active_power"] == n, bad[:60]
        await write(client, redis_client, b"{broken")
        await assert_silent(ws)
        assert (await (await client.get("/active-power")).json())["active_power"] == len(BAD_VALUES)
    rejected = [r for r in caplog.records if "rejected the value written to powersim:latest" in r.getMessage()]
    assert len(rejected) == len(BAD_VALUES) + 1, [r.getMessage()[50:110] for r in rejected]
    assert all(r.levelno == logging.WARNING for r in rejected)


HOSTILE_VALUES = [
    pytest.param(b"[" * 1500 + b"]" * 1500, "nested too deeply", id="nested 1500 deep"),
    pytest.param(
        b'{"active_power": 1, "reactive_power": 2, "x": ' + b"[" * 1500 + b"]" * 1500 + b"}",
        "nested too deeply",
        id="a deep extra key",
    ),
    pytest.param(
        b'{"active_power": 1, "reactive_power": 2, "launched_at": "0001-01-01T00:00:00+01:00"}',
        "outside the years 1 to 9999",
        id="year 0 in UTC",
    ),
    pytest.param(
        b'{"active_power": 1, "reactive_power": 2, "launched_at": "' + b"\\u001b[31m" * 400 + b'"}',
        "launched_at is not an ISO 8601 time",
        id="a long launched_at",
    ),
    pytest.param(
        b'{"active_power": ' + b"[" * 10 + b"]" * 10 + b', "reactive_power": 2}',
        "active_power is not a number: a JSON array",
        id="nested power",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), HOSTILE_VALUES)
async def test_a_hostile_value_is_one_warning_line_and_pushes_go_on(
    client: Client, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture, raw: bytes, reason: str
) -> None:
    caplog.set_level(logging.WARNING)
    assert len(raw) <= MAX_VALUE_BYTES
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        await write(client, redis_client, raw)
        await write(client, redis_client, value(5.0))
        assert (await next_json(ws))["active_power"] == 5.0
    assert (await (await client.get("/healthz")).json())["status"] == "ok"
    assert [r.levelno for r in caplog.records] == [logging.WARNING], caplog.text
    line = caplog.records[0].getMessage()
    assert line.startswith("rejected the value written to powersim:latest: ")
    assert reason in line
    assert "\n" not in line
    assert len(line) < 200


@pytest.mark.parametrize(("raw", "reason"), HOSTILE_VALUES)
async def test_the_server_starts_with_a_hostile_value_in_redis(
    make_client: ClientFactory, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture, raw: bytes, reason: str
) -> None:
    await redis_client.set(LATEST_KEY, raw)
    caplog.set_level(logging.WARNING)
    client = await make_client()
    await expect_json_status(client, "/active-power", 404)
    assert (await (await client.get("/healthz")).json())["status"] == "ok"
    assert sum(reason in r.getMessage() for r in caplog.records) == 1


async def expect_json_status(client: Client, path: str, status: int) -> None:
    resp = await client.get(path)
    assert resp.status == status
    assert "error" in await resp.json()


async def test_the_same_result_is_not_sent_twice_in_a_row(client: Client, redis_client: aioredis.Redis) -> None:
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        for raw in (value(1.0), value(1.0), value(1.0, extra="same result, other bytes"), value(2.0)):
            await write(client, redis_client, raw)
        assert (await next_json(ws))["active_power"] == 1.0
        assert (await next_json(ws))["active_power"] == 2.0
        await assert_silent(ws)


async def test_deleting_the_key_keeps_the_last_result(client: Client, redis_client: aioredis.Redis) -> None:
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        await redis_client.set(LATEST_KEY, value(3.0))
        assert (await next_json(ws))["active_power"] == 3.0
        watcher = client.app[POWERSIM].watcher
        mark = watcher.reads_started
        await redis_client.delete(LATEST_KEY)
        async with asyncio.timeout(5):
            await watcher.wait_for_read_after(mark)
        await assert_silent(ws)
        assert (await (await client.get("/active-power")).json())["active_power"] == 3.0


async def test_two_servers_sharing_redis(make_client: ClientFactory, tmp_path: Path) -> None:
    first = await make_client(database_path=tmp_path / "a" / "powersim.db")
    second = await make_client(database_path=tmp_path / "b" / "powersim.db")
    async with second.ws_connect("/simulator-subscribe") as ws:
        assert await next_json(ws) == EMPTY
        result = await (await first.post("/run-simulation")).json()
        assert await next_json(ws) == result
        assert (await (await second.get("/active-power")).json())["launched_at"] == result["launched_at"]


async def test_gets_are_served_from_memory(client: Client, redis_client: aioredis.Redis) -> None:
    await client.post("/run-simulation")
    await redis_client.config_resetstat()
    for _ in range(50):
        assert (await client.get("/active-power")).status == 200
        assert (await client.get("/reactive-power")).status == 200
    stats = await redis_client.info("commandstats")
    assert set(stats) <= {"cmdstat_info", "cmdstat_config|resetstat", "cmdstat_config"}, stats


def stuck_websocket(port: int | None) -> socket.socket:
    """A client that completes the handshake and then never reads a byte."""
    assert port is not None, "the test server is not listening"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /simulator-subscribe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


async def test_a_stuck_client_neither_delays_others_nor_grows(client: Client, redis_client: aioredis.Redis) -> None:
    hub = client.app[HUB]
    stuck = stuck_websocket(client.port)
    try:
        async with client.ws_connect("/simulator-subscribe") as ws:
            await next_json(ws)
            assert len(hub) == 2
            rounds = 3000  # about 300 KB of pushes: far more than a stuck socket may buffer
            seen: list[float] = []
            for n in range(1, rounds + 1):
                await write(client, redis_client, value(float(n)))
            while not seen or seen[-1] != rounds:
                seen.append((await next_json(ws, wait=10))["active_power"])
            assert seen == sorted(set(seen)), "out of order or repeated"
            stuck_subscriber = max(hub._subscribers, key=lambda s: s.dropped)
            assert stuck_subscriber.dropped > 0, "the stuck client never fell behind: the test proves nothing"
            assert all(s.pending <= SUBSCRIBER_QUEUE for s in hub._subscribers)
    finally:
        stuck.close()


async def test_a_peer_that_never_answers_pings_is_dropped(make_client: ClientFactory) -> None:
    client = await make_client(ws_heartbeat=0.5)
    hub = client.app[HUB]
    silent = stuck_websocket(client.port)  # a raw socket: it never sends the pong
    try:
        await eventually(lambda: len(hub) == 1)  # the silent peer has subscribed
        async with client.ws_connect("/simulator-subscribe") as ws:
            received: asyncio.Queue[aiohttp.WSMessage] = asyncio.Queue()

            async def read() -> None:  # a reading client answers pings (aiohttp does it in receive)
                while not ws.closed:
                    await received.put(await ws.receive())

            reader = asyncio.create_task(read())
            try:
                assert (await asyncio.wait_for(received.get(), 5)).type == aiohttp.WSMsgType.TEXT
                assert len(hub) == 2
                await eventually(lambda: len(hub) == 1)  # the silent peer is dropped...
                assert not ws.closed  # ...and the answering one is kept
                result = await (await client.post("/run-simulation")).json()
                pushed = await asyncio.wait_for(received.get(), 5)
                assert json.loads(pushed.data) == result
            finally:
                reader.cancel()
    finally:
        silent.close()


async def test_protocol_rules(client: Client) -> None:
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        await ws.send_str("hello, server")  # ignored
        result = await (await client.post("/run-simulation")).json()
        assert await next_json(ws) == result
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1003
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        await ws.send_str("x" * 10_000)
        assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1009


async def test_watcher_survives_a_redis_restart(
    client: Client,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    before = await (await client.post("/run-simulation")).json()
    async with client.ws_connect("/simulator-subscribe") as ws:
        assert await next_json(ws) == before
        redis_server.stop()
        health = await client.get("/healthz")
        assert (health.status, (await health.json())["status"]) == (200, "degraded")
        assert (await (await client.get("/active-power")).json())["id"] == before["id"]
        during = await (await client.post("/run-simulation")).json()  # stored, Redis write deferred
        assert during["id"] == before["id"] + 1
        await assert_silent(ws, 0.5)

        redis_server.start()  # empty, and with keyspace notifications off again
        assert await next_json(ws, wait=15) == during  # re-published, then pushed by the watcher
        flags = (await redis_client.config_get("notify-keyspace-events"))["notify-keyspace-events"]
        assert "K" in flags
        await redis_client.set(LATEST_KEY, value(9.0))
        assert (await next_json(ws))["active_power"] == 9.0
    health = await (await client.get("/healthz")).json()
    assert health["status"] == "ok"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("lost Redis" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1


def websocat_binary() -> str:
    found = shutil.which("websocat", path=str(Path(sys.prefix) / "bin")) or shutil.which("websocat")
    if found is None:
        pytest.fail("websocat is not installed: it comes with requirements-dev.txt")
    return found


async def test_websocat_sees_a_run(client: Client) -> None:
    """The README session: websocat listening, curl-like POST, the result arrives as a line."""
    proc = await asyncio.create_subprocess_exec(
        websocat_binary(),
        "-n",
        "-U",
        f"ws://127.0.0.1:{client.port}/simulator-subscribe",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 10))
        assert first == EMPTY
        result = await (await client.post("/run-simulation")).json()
        assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 10)) == result
    finally:
        proc.kill()
        await proc.wait()
