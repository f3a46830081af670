"""Hostile input at the edge, the GraphQL websocket's limits, and bounded shutdown: real server, real sockets."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import struct
import time
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from powersim.app import create_app
from powersim.constants import (
    GQL_MAX_OPERATIONS_PER_CONNECTION,
    GQL_MAX_QUERY_BYTES,
    GQL_WS_MAX_FRAME_BYTES,
    LATEST_KEY,
    WS_CLOSE_TIMEOUT_S,
)
from powersim.keys import HUB, WEBSOCKETS, WS_GAUGE
from powersim.logs import quiet_malformed_requests
from powersim.settings import Settings

from .conftest import ClientFactory
from .waiting import eventually

Client = TestClient[Any, Any]
GQL_WS = ["graphql-transport-ws"]
SUBSCRIBE = {"query": "subscription { simulationResults { id } }"}
DEEP = 5000  # far beyond the JSON parser's recursion limit, under the 16 KiB body cap


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


# --- item 8: deep nesting answers 400, never a 500 with a traceback --------------------------


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        # The run's inputs are parsed by pydantic, after the same depth check as all outside JSON.
        ("/run-simulation", b"[" * DEEP + b"]" * DEEP, "the body is nested too deeply (more than 64 levels)"),
        (
            "/run-simulation",
            b'{"a":' * 2500 + b"1" + b"}" * 2500,
            "the body is nested too deeply (more than 64 levels)",
        ),
        (
            "/run-simulation",
            b'{"load_p_mw":' + b"[" * DEEP + b"]" * DEEP + b"}",
            "the body is nested too deeply (more than 64 levels)",
        ),
        ("/graphql", b"[" * DEEP + b"]" * DEEP, "the JSON is nested too deeply (more than 64 levels)"),
        (
            "/graphql",
            b'{"query": "{ activePower }", "variables": {"v": ' + b"[" * DEEP + b"]" * DEEP + b"}}",
            "the JSON is nested too deeply (more than 64 levels)",
        ),
    ],
)
async def test_deeply_nested_json_bodies_are_400_without_a_traceback(
    client: Client, caplog: pytest.LogCaptureFixture, path: str, body: bytes, message: str
) -> None:
    resp = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert (resp.status, await resp.json()) == (400, {"error": message})
    assert tracebacks(caplog) == []


async def test_deeply_nested_variables_in_a_get_are_400(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    deep = 2000  # twice the parser's recursion limit; the request line stays under aiohttp's 8 KiB
    url = URL(f"/graphql?query=%7BactivePower%7D&variables={'[' * deep}{']' * deep}", encoded=True)
    resp = await client.get(url)
    assert (resp.status, await resp.json()) == (400, {"error": "the JSON is nested too deeply (more than 64 levels)"})
    assert tracebacks(caplog) == []


async def test_a_deeply_nested_websocket_message_closes_with_4400(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await connect(client)
    await ws.send_str("[" * DEEP + "]" * DEEP)
    assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
    assert (ws.close_code, tracebacks(caplog)) == (4400, [])


DEEP_QUERIES = {
    "selections": "{" + "a{" * 2000 + "id" + "}" * 2000 + "}",
    "list literal": "{ simulations(limit: " + "[" * 3000 + "]" * 3000 + ") { id } }",
    "object literal": "{ simulations(limit: " + "{a:" * 1500 + "1" + "}" * 1500 + ") { id } }",
}


@pytest.mark.parametrize("kind", DEEP_QUERIES)
async def test_deeply_nested_query_text_is_a_graphql_error_without_a_traceback(
    client: Client, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    resp = await client.post("/graphql", json={"query": DEEP_QUERIES[kind]})
    assert resp.status == 200
    body = await resp.json()
    assert body["data"] is None
    # graphql-core's own nesting bound, ours (RecursionError) or the token cap: never a masked error.
    message = body["errors"][0]["message"]
    assert "nested too deeply" in message or "more than 1000 tokens" in message, body
    assert tracebacks(caplog) == []


async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


async def test_logged_request_paths_cannot_forge_lines(
    aiohttp_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A path reaches the log through the error middleware; a route that raises shows it."""
    app = create_app(settings)
    app.router.add_get("/boom/{tail:[^/]*}", boom)
    client: Client = await aiohttp_client(app)
    resp = await client.get(URL("/boom/%0aFAKE%20ERROR%0d%1b[31m", encoded=True))
    assert resp.status == 500
    [record] = [r for r in caplog.records if r.name == "powersim.middlewares"]
    assert record.getMessage() == "GET /boom/\\nFAKE ERROR\\r\\x1b[31m raised"


async def test_graphql_errors_are_logged_on_one_line(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    """strawberry logged every client error at ERROR, multi-line, quoting the query from the URL."""
    caplog.set_level(logging.DEBUG)
    resp = await client.get(URL("/graphql?query=%7B%0A2026-01-01%20ERROR%20forged", encoded=True))
    assert "Syntax Error" in (await resp.json())["errors"][0]["message"]
    messages = [r.getMessage() for r in caplog.records if r.name.startswith(("strawberry", "powersim"))]
    assert any("Syntax Error" in m for m in messages)
    assert all("\n" not in m for m in messages), messages
    assert tracebacks(caplog) == []


# --- item 9: the GraphQL websocket has /simulator-subscribe's limits --------------------------


async def connect(client: Client, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    ws: aiohttp.ClientWebSocketResponse = await client.ws_connect("/graphql", protocols=GQL_WS, **kwargs)
    await ws.send_json({"type": "connection_init"})
    assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    return ws


async def subscribe(ws: aiohttp.ClientWebSocketResponse, op: str, payload: dict[str, Any] = SUBSCRIBE) -> Any:
    await ws.send_json({"id": op, "type": "subscribe", "payload": payload})
    message = await ws.receive_json(timeout=5)
    assert message["id"] == op, message
    return message


async def test_graphql_websocket_declines_compression(client: Client) -> None:
    ws = await connect(client, compress=15)
    try:
        assert ws.compress == 0
    finally:
        await ws.close()


async def test_graphql_websocket_closes_on_an_oversize_frame_with_1009(client: Client) -> None:
    ws = await connect(client)
    query = "subscription { simulationResults { id } } #" + "x" * GQL_WS_MAX_FRAME_BYTES
    await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
    assert (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.CLOSE
    assert ws.close_code == 1009


async def test_an_oversized_query_is_refused_before_it_is_parsed(client: Client) -> None:
    # Unterminated: parsed, it would be a syntax error (and close the websocket with 4400).
    query = "{ activePower #" + "x" * GQL_MAX_QUERY_BYTES
    refused = f"the query is {len(query)} bytes long; at most {GQL_MAX_QUERY_BYTES} are accepted"
    body = await (await client.post("/graphql", json={"query": query})).json()
    assert body == {"data": None, "errors": [{"message": refused}]}
    ws = await connect(client)
    try:
        message = await subscribe(ws, "1", {"query": query})
        assert (message["type"], message["payload"][0]["message"]) == ("error", refused)
        await (await client.post("/run-simulation")).json()
        assert (await subscribe(ws, "2"))["type"] == "next"  # the connection is still usable
    finally:
        await ws.close()


async def test_a_subscription_beyond_the_per_connection_cap_is_refused(client: Client) -> None:
    await client.post("/run-simulation")
    ws = await connect(client)
    try:
        for n in range(GQL_MAX_OPERATIONS_PER_CONNECTION):
            assert (await subscribe(ws, str(n)))["type"] == "next"
        refused = await subscribe(ws, "extra")
        assert refused["type"] == "error"
        assert refused["payload"][0]["message"] == "Subscription limit reached"
        assert len(client.app[HUB]) == GQL_MAX_OPERATIONS_PER_CONNECTION
    finally:
        await ws.close()


async def test_subscriptions_count_against_max_subscribers(make_client: ClientFactory) -> None:
    client = await make_client(max_subscribers=3)
    gauge = client.app[WS_GAUGE]
    await client.post("/run-simulation")
    first, second = await connect(client), await connect(client)
    try:
        assert (await subscribe(first, "a"))["type"] == "next"  # rides on the connection's slot
        assert (await subscribe(first, "b"))["type"] == "next"  # takes a slot of its own
        assert gauge.count == 3
        assert (await subscribe(second, "c"))["type"] == "next"  # covered by the second connection's slot
        refused = await subscribe(second, "d")
        assert refused["payload"]["data"] is None, refused
        assert refused["payload"]["errors"][0]["message"] == "too many subscriptions (POWERSIM_MAX_SUBSCRIBERS=3)"
        assert (await second.receive_json(timeout=5)) == {"id": "d", "type": "complete"}
        rest = await client.get("/simulator-subscribe", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
        assert rest.status == 503  # the same pool for every kind of websocket
        await first.send_json({"id": "b", "type": "complete"})
        await eventually(lambda: gauge.count == 2)
        assert (await subscribe(second, "e"))["type"] == "next"
        assert gauge.count == 3
    finally:
        await first.close()
        await second.close()
    await eventually(lambda: gauge.count == 0)


def port(client: Client) -> int:
    assert client.port is not None
    return client.port


def raw_websocket(port: int, path: str, protocol: str | None = None) -> socket.socket:
    """A client that completes the handshake and then reads nothing more (a small buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    extra = f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else ""
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n{extra}"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def text_frame(text: str) -> bytes:
    """A masked client text frame (RFC 6455 5.2)."""
    payload = text.encode()
    mask = os.urandom(4)
    size = len(payload)
    header = struct.pack("!BB", 0x81, 0x80 | size) if size < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


BIG_QUERY = "{ " + " ".join(f"a{i}: simulations(limit: 60) {{ id activePower launchedAt }}" for i in range(14)) + " }"


async def stuck_graphql_client(client: Client) -> socket.socket:
    """A GraphQL websocket client that asked for ~300 KB of answers and then stopped reading."""
    for _ in range(60):
        assert (await client.post("/run-simulation")).status == 200
    sock = await asyncio.to_thread(raw_websocket, port(client), "/graphql", "graphql-transport-ws")
    messages = [{"type": "connection_init"}] + [
        {"id": str(n), "type": "subscribe", "payload": {"query": BIG_QUERY}} for n in range(4)
    ]
    sock.sendall(b"".join(text_frame(json.dumps(m)) for m in messages))
    await eventually(lambda: len(client.app[WEBSOCKETS]) == 1)
    return sock


async def test_a_graphql_peer_that_never_answers_pings_is_dropped_and_aborted(make_client: ClientFactory) -> None:
    client = await make_client(ws_heartbeat=1)
    assert client.server.runner is not None
    server = client.server.runner.server
    assert server is not None
    sock = await stuck_graphql_client(client)
    try:
        open_connections = len(server.connections)  # the stuck one, and the client's keep-alive
        [transport] = client.app[WEBSOCKETS].values()
        await eventually(lambda: transport.get_write_buffer_size() > 100_000)  # answers it will never read
        # Dropped after the heartbeat and half of it more; its transport, with unsent bytes that
        # cannot be flushed, is aborted rather than left waiting to flush forever.
        await eventually(lambda: len(server.connections) == open_connections - 1, 10)
        assert len(client.app[WEBSOCKETS]) == client.app[WS_GAUGE].count == 0
    finally:
        sock.close()


# --- item 11: shutdown is bounded, stuck clients included ---------------------------------------


async def test_a_stuck_client_does_not_hold_shutdown(
    make_client: ClientFactory, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="powersim.ws")
    client = await make_client(drain_timeout=1.0)
    stuck = await stuck_graphql_client(client)
    rest = await asyncio.to_thread(raw_websocket, port(client), "/simulator-subscribe")
    for n in range(2000):  # pushes pile up behind the /simulator-subscribe client too
        await redis_client.set(LATEST_KEY, f'{{"active_power": {n}, "reactive_power": 0}}')
    try:
        await eventually(lambda: len(client.app[WEBSOCKETS]) == 2)
        started = time.monotonic()
        async with asyncio.timeout(10):
            await client.close()
        elapsed = time.monotonic() - started
        # The drain timeout (1 s), plus aiohttp's short wait for handlers and the app's cleanup.
        assert elapsed < 1.0 + 1.5, elapsed
        assert any("did not close within 1.0 s" in r.getMessage() for r in caplog.records)
    finally:
        stuck.close()
        rest.close()


def binary_frame(payload: bytes) -> bytes:
    """A masked client binary frame, small enough for a one-byte length."""
    mask = os.urandom(4)
    return struct.pack("!BB", 0x82, 0x80 | len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("last_straw", ["binary frame", "oversize frame"])
async def test_a_stuck_client_that_provokes_a_close_gives_its_slot_back(
    make_client: ClientFactory, redis_client: aioredis.Redis, last_straw: str
) -> None:
    """A client that stopped reading, then sends what makes the server close (1003 or 1009): the
    close cannot be delivered, and must not hold the connection's slot forever."""
    client = await make_client(max_subscribers=1)
    gauge = client.app[WS_GAUGE]
    stuck = await asyncio.to_thread(raw_websocket, port(client), "/simulator-subscribe")
    try:
        [transport] = client.app[WEBSOCKETS].values()
        n = 0
        while transport.get_write_buffer_size() == 0:  # pushes fill its socket, then our buffer
            n += 1
            await redis_client.set(LATEST_KEY, f'{{"active_power": {n}, "reactive_power": 0}}')
        frame = binary_frame(b"\x00\x01") if last_straw == "binary frame" else text_frame("x" * 10_000)
        stuck.sendall(frame)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await eventually(lambda: gauge.count == 0, WS_CLOSE_TIMEOUT_S + 3)
        assert loop.time() - started < WS_CLOSE_TIMEOUT_S + 1.5
        async with client.ws_connect("/simulator-subscribe") as ws:  # the only slot is free again
            assert "id" in await ws.receive_json(timeout=5)
    finally:
        stuck.close()


@pytest.mark.parametrize("header", ["Upgrade", "Connection", "Sec-WebSocket-Version", "Sec-WebSocket-Key"])
@pytest.mark.parametrize("path", ["/simulator-subscribe", "/graphql"])
async def test_non_utf8_handshake_headers_are_a_400(
    client: Client, caplog: pytest.LogCaptureFixture, header: str, path: str
) -> None:
    headers = {
        "Host": f"127.0.0.1:{port(client)}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    lines = [f"GET {path} HTTP/1.1".encode()]
    for name, text in headers.items():
        lines.append(name.encode() + b": " + (text.encode() + b"\xff" if name == header else text.encode()))
    reader, writer = await asyncio.open_connection("127.0.0.1", port(client))
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
    status_line = await reader.readline()
    answer = await reader.read(1000)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 400"), (status_line, answer)
    assert b'"error"' in answer
    assert tracebacks(caplog) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ latest { id } }", "queries are not allowed"),
        ("mutation { runSimulation { id } }", "mutations are not allowed"),
        ("#" * (GQL_MAX_QUERY_BYTES + 1), f"at most {GQL_MAX_QUERY_BYTES} are accepted"),
    ],
)
async def test_legacy_graphql_ws_reports_client_mistakes_unmasked_and_quietly(
    client: Client, caplog: pytest.LogCaptureFixture, query: str, message: str
) -> None:
    """The legacy protocol's `start` carries subscriptions only: anything else, or a query the
    bounds refuse, is the client's mistake: its own message, and no ERROR line."""
    caplog.set_level(logging.DEBUG)
    async with client.ws_connect("/graphql", protocols=["graphql-ws"]) as ws:
        await ws.send_json({"type": "connection_init"})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "start", "payload": {"query": query}})
        while (answer := await ws.receive_json(timeout=5))["type"] == "ka":
            pass
    assert answer["type"] == "error", answer
    assert message in answer["payload"]["message"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def ping_frame(payload: bytes = b"p" * 125) -> bytes:
    mask = os.urandom(4)
    return struct.pack("!BB", 0x89, 0x80 | len(payload)) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def flood(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send `data` again and again until the server stops taking it (or time is up)."""
    sock.settimeout(0.5)
    sent = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            sock.sendall(data)
            sent += 1
    except TimeoutError:
        pass  # the server no longer reads: it is stuck answering, or gave up on us
    return sent


async def test_a_peer_flooding_pings_without_reading_gives_its_slot_back(make_client: ClientFactory) -> None:
    """aiohttp answers each PING inside receive() and waits for the answer to drain: a peer that
    never reads would hold the handler, and its POWERSIM_MAX_SUBSCRIBERS slot, forever."""
    client = await make_client(max_subscribers=1)
    gauge = client.app[WS_GAUGE]
    stuck = await asyncio.to_thread(raw_websocket, port(client), "/simulator-subscribe")
    try:
        [transport] = client.app[WEBSOCKETS].values()
        sent = await asyncio.to_thread(flood, stuck, ping_frame() * 100, 10)
        assert sent > 0
        assert transport.get_write_buffer_size() > 0 or transport.is_closing()  # it fell behind
        await eventually(lambda: gauge.count == 0, WS_CLOSE_TIMEOUT_S + 3)
        async with client.ws_connect("/simulator-subscribe") as ws:  # the only slot is free again
            assert "id" in await ws.receive_json(timeout=5)
    finally:
        stuck.close()


@pytest.mark.parametrize("path", ["/run-simulation", "/graphql"])
async def test_a_body_that_cannot_be_decoded_is_a_400(
    client: Client, caplog: pytest.LogCaptureFixture, settings: Settings, path: str
) -> None:
    quiet_malformed_requests()  # as python -m powersim does at start-up
    resp = await client.post(
        path, data=b"abcde", headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert "could not be read" in (await resp.json())["error"]
    assert tracebacks(caplog) == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
