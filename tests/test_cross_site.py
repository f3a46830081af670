"""Cross-site use: a web page the user visits must not drive the API (Origin), nor reach it under
its own name (DNS rebinding: Host); scripts without an Origin work as before. Also the
Authorization header's raw bytes."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from powersim.constants import LATEST_KEY
from powersim.guards import host_name, origin_allowed
from powersim.settings import Settings

from .conftest import ClientFactory

Client = TestClient[Any, Any]
API_TOKEN = "api-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
EVIL = "https://evil.example"
MUTATION = {"query": "mutation { runSimulation { id activePower } }"}


def upgrade_headers(**extra: str) -> dict[str, str]:
    """A websocket handshake sent as a plain GET, so that the refusal's JSON body can be read."""
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    return handshake | {"Sec-WebSocket-Key": key} | extra


async def expect_json_error(resp: aiohttp.ClientResponse, status: int, contains: str) -> None:
    assert resp.status == status
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert contains in body["error"], body


async def nothing_stored(client: Client, redis_client: aioredis.Redis) -> None:
    resp = await client.get("/simulations")
    assert (await resp.json())["simulations"] == []
    assert await redis_client.get(LATEST_KEY) is None


async def can_use_everything(client: Client, headers: dict[str, str]) -> None:
    """Both websockets open, a REST run and a GraphQL mutation are stored."""
    async with client.ws_connect("/simulator-subscribe", headers=headers) as ws:
        assert "id" in await ws.receive_json(timeout=5)
    async with client.ws_connect("/graphql", headers=headers, protocols=["graphql-transport-ws"]) as ws:
        await ws.send_json({"type": "connection_init"})
        assert (await ws.receive_json(timeout=5))["type"] == "connection_ack"
    resp = await client.post("/run-simulation", headers=headers)
    assert resp.status == 200
    resp = await client.post("/graphql", json=MUTATION, headers=headers)
    assert resp.status == 200
    assert (await resp.json())["data"]["runSimulation"]["id"]


# --- Origin: cross-origin pages are refused by default ------------------------------------------


@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:1"])
async def test_a_cross_origin_page_cannot_open_either_websocket(client: Client, origin: str) -> None:
    for path in ("/simulator-subscribe", "/graphql"):
        resp = await client.get(path, headers=upgrade_headers(Origin=origin))
        await expect_json_error(resp, 403, "POWERSIM_ALLOWED_ORIGINS")
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(path, headers={"Origin": origin}, protocols=["graphql-transport-ws"])
        assert refused.value.status == 403


@pytest.mark.parametrize("origin", [EVIL, "null"])
async def test_a_cross_origin_page_cannot_run_simulations_or_mutations(
    client: Client, redis_client: aioredis.Redis, origin: str
) -> None:
    resp = await client.post("/run-simulation", headers={"Origin": origin})
    await expect_json_error(resp, 403, "not allowed")
    # A page can POST text/plain without a CORS preflight; JSON is refused alike.
    for content_type in ("application/json", "text/plain"):
        resp = await client.post(
            "/graphql", data=json.dumps(MUTATION), headers={"Origin": origin, "Content-Type": content_type}
        )
        await expect_json_error(resp, 403, "not allowed")
    await nothing_stored(client, redis_client)


async def test_a_page_without_origin_but_marked_cross_site_is_refused(
    client: Client, redis_client: aioredis.Redis
) -> None:
    resp = await client.post("/run-simulation", headers={"Sec-Fetch-Site": "cross-site"})
    await expect_json_error(resp, 403, "from another site")
    await nothing_stored(client, redis_client)


async def test_cross_origin_reads_are_not_blocked(client: Client) -> None:
    """GETs change nothing, and without CORS headers a page cannot read their answer."""
    resp = await client.get("/simulations", headers={"Origin": EVIL})
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_same_origin_pages_may_use_everything(client: Client) -> None:
    await can_use_everything(client, {"Origin": f"http://127.0.0.1:{client.port}"})
    await can_use_everything(client, {"Origin": f"http://localhost:{client.port}", "Host": f"localhost:{client.port}"})
    resp = await client.get("/simulations")
    assert len((await resp.json())["simulations"]) == 4


async def test_listed_origins_may_use_everything(make_client: ClientFactory) -> None:
    client = await make_client(allowed_origins=("https://grid.example",))
    await can_use_everything(client, {"Origin": "https://grid.example"})
    await can_use_everything(client, {"Origin": "HTTPS://Grid.Example/"})  # browsers never send this form
    resp = await client.post("/run-simulation", headers={"Origin": "https://grid.example:8443"})
    assert resp.status == 403


async def test_a_star_allows_any_origin(make_client: ClientFactory) -> None:
    client = await make_client(allowed_origins=("*",))
    await can_use_everything(client, {"Origin": EVIL})
    await can_use_everything(client, {"Origin": "null"})


async def test_clients_without_origin_work_as_before(client: Client) -> None:
    """curl, websocat and scripts send no Origin (and no Sec-Fetch-Site)."""
    await can_use_everything(client, {})


# --- Host: DNS rebinding ------------------------------------------------------------------------


async def test_dns_rebinding_is_refused_even_with_an_allow_list(
    make_client: ClientFactory, redis_client: aioredis.Redis
) -> None:
    """evil.example resolves to 127.0.0.1: the page is "same origin" with the Host it sends."""
    client = await make_client(allowed_origins=("https://grid.example",))
    rebound = {"Host": f"evil.example:{client.port}", "Origin": f"http://evil.example:{client.port}"}
    for method, path, headers in [
        ("POST", "/run-simulation", rebound),
        ("POST", "/graphql", rebound),
        ("GET", "/simulator-subscribe", upgrade_headers(**rebound)),
        ("GET", "/graphql", upgrade_headers(**rebound)),
        ("GET", "/simulations", rebound),
        ("GET", "/healthz", rebound),
        ("GET", "/active-power", {"Host": "evil.example"}),
    ]:
        resp = await client.request(method, path, headers=headers, json=MUTATION if path == "/graphql" else None)
        await expect_json_error(resp, 400, "host 'evil.example' is not served here")
    await nothing_stored(client, redis_client)


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:5000", "LOCALHOST.", "dash.localhost:1", "127.0.0.1:5000", "10.1.2.3", "[::1]:5000",
     "[2001:db8::1]"],
)  # fmt: skip
async def test_localhost_names_and_ip_literals_are_served_by_default(client: Client, host: str) -> None:
    resp = await client.get("/healthz", headers={"Host": host})
    assert resp.status == 200


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "::1", "[::1", "a:b"])
async def test_other_hosts_are_refused_by_default(client: Client, host: str) -> None:
    resp = await client.get("/healthz", headers={"Host": host})
    await expect_json_error(resp, 400, "POWERSIM_ALLOWED_HOSTS")


async def test_allowed_hosts_and_the_configured_host_name(make_client: ClientFactory) -> None:
    client = await make_client(host="powersim", allowed_hosts=("grid.example", ".corp.example"))
    expected = {
        "powersim:5000": 200,  # HOST, when it is a name (compose services reach each other by it)
        "grid.example": 200,
        "Grid.Example:443": 200,
        "corp.example": 200,
        "a.b.corp.example": 200,
        "www.grid.example": 400,  # an exact name is not a suffix
        "evilcorp.example": 400,
    }
    got = {host: (await client.get("/healthz", headers={"Host": host})).status for host in expected}
    assert got == expected
    anyone = await make_client(allowed_hosts=("*",))
    assert (await anyone.get("/healthz", headers={"Host": "evil.example"})).status == 200


# --- Authorization header with bytes that are not UTF-8 -----------------------------------------


async def raw_request(port: int, head: bytes) -> tuple[int, dict[str, Any]]:
    """aiohttp's client refuses to send such a header: write the bytes on a socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()  # Connection: close
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body)


@pytest.mark.parametrize(
    ("method", "path", "extra"),
    [
        (b"POST", b"/run-simulation", b"Content-Length: 0\r\n"),
        (b"GET", b"/simulations", b""),
        (b"GET", b"/simulator-subscribe", b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
        (b"POST", b"/graphql", b"Content-Type: application/json\r\nContent-Length: 2\r\n"),
    ],
)  # fmt: skip
async def test_a_non_utf8_authorization_header_is_a_401(
    make_client: ClientFactory, redis_client: aioredis.Redis, method: bytes, path: bytes, extra: bytes
) -> None:
    client = await make_client(api_token=API_TOKEN, read_token=READ_TOKEN)
    for token in (b"\xff\xfe\x80", API_TOKEN.encode()[:-1] + b"\xe9", b"\xed\xa0\x80" + READ_TOKEN.encode()):
        head = (
            method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token + b"\r\n"
            + extra + b"Connection: close\r\n\r\n" + (b"{}" if path == b"/graphql" else b"")
        )  # fmt: skip
        assert client.port is not None
        status, body = await raw_request(client.port, head)
        assert (status, set(body)) == (401, {"error"}), body
    await nothing_stored_with_token(client, redis_client)


async def nothing_stored_with_token(client: Client, redis_client: aioredis.Redis) -> None:
    resp = await client.get("/simulations", headers={"Authorization": f"Bearer {READ_TOKEN}"})
    assert (await resp.json())["simulations"] == []
    assert await redis_client.get(LATEST_KEY) is None


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        ("https://dash.example.com", "127.0.0.1:5000", ("https://dash.example.com:443",), True),
        ("https://dash.example.com:443", "127.0.0.1:5000", ("https://dash.example.com",), True),
        ("http://127.0.0.1", "127.0.0.1:80", (), True),  # the Host keeps the default port
        ("http://127.0.0.1:80", "127.0.0.1", (), True),
        ("https://127.0.0.1", "127.0.0.1:80", (), False),  # not the https default port
        ("http://127.0.0.1:8080", "127.0.0.1", (), False),
    ],
)
def test_default_ports_do_not_make_another_origin(origin: str, host: str, allowed: tuple[str, ...], ok: bool) -> None:
    settings = Settings.from_env({"POWERSIM_ALLOWED_ORIGINS": ",".join(allowed)})
    assert origin_allowed(origin, host, settings) is ok


def test_unicode_digits_are_not_a_port() -> None:
    assert host_name("127.0.0.1:\u0661\u0662") == ""
    assert host_name("[::1]:\u0661") == ""
    assert host_name("127.0.0.1:12") == "127.0.0.1"
