"""Overload, faults, bad input and access control: each a behaviour that would fail without it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import stat
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from powersim.app import create_app
from powersim.constants import LATEST_KEY, MAX_BODY_BYTES
from powersim.settings import Settings

from .conftest import ClientFactory
from .processes import post, server_env, start_server, wait_healthy
from .test_rest import expect_error, rows, runs_in_flight
from .waiting import eventually

Client = TestClient[Any, Any]
API_TOKEN = "api-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"


# --- overload -------------------------------------------------------------------------------


async def test_runs_beyond_max_pending_are_refused_at_once(make_client: ClientFactory, settings: Settings) -> None:
    client = await make_client(simulation="tests.sims:slow", max_pending=2)
    queued = [asyncio.create_task(client.post("/run-simulation")) for _ in range(2)]
    await eventually(lambda: runs_in_flight(client) == 2, 10, "the two runs were never both in flight")
    loop = asyncio.get_running_loop()
    started = loop.time()
    refused = await client.post("/run-simulation")
    assert loop.time() - started < 0.5, "the refusal waited for the queue"
    await expect_error(refused, 503, "runs are queued or running")
    assert refused.headers["Retry-After"] == "1"
    assert [r.status for r in await asyncio.gather(*queued)] == [200, 200]
    assert len(rows(settings)) == 2  # nothing half-written for the refused one


async def test_a_client_that_leaves_does_not_lose_its_run(
    aiohttp_client: Any, settings: Settings, redis_client: aioredis.Redis
) -> None:
    # With handler_cancellation the handler is cancelled when its client goes away (aiohttp's
    # default keeps it running); the run must survive that too.
    app = create_app(dataclasses.replace(settings, simulation="tests.sims:slow"))
    client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    async with client.ws_connect("/simulator-subscribe") as ws:
        await ws.receive_json(timeout=5)
        with pytest.raises(asyncio.TimeoutError):
            await client.post("/run-simulation", timeout=aiohttp.ClientTimeout(total=0.3))
        pushed = await ws.receive_json(timeout=5)  # the run went on: stored, then published
    assert pushed["active_power"] == 0.2
    assert [row[0] for row in rows(settings)] == [pushed["id"]]
    assert json.loads(await redis_client.get(LATEST_KEY)) == pushed


async def test_large_bodies_are_refused(client: Client, settings: Settings) -> None:
    big = b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}"
    await expect_error(await client.post("/run-simulation", data=big), 413, "larger than")

    async def chunks() -> Any:  # no Content-Length: the cap applies while reading
        for _ in range(40):
            yield b" " * 1024

    resp = await client.post("/run-simulation", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await resp.json())["error"]
    await expect_error(await client.post("/graphql", data=big), 413, "larger than")
    assert rows(settings) == []


NOT_JSON = "send the inputs as a JSON object (application/json); got "


@pytest.mark.parametrize(
    ("body", "content_type", "status", "answer"),
    [
        (b"x=1", "application/x-www-form-urlencoded", 415, {"error": NOT_JSON + "application/x-www-form-urlencoded"}),
        (b"hello", "text/plain", 415, {"error": NOT_JSON + "text/plain"}),
        (b'{"load_p_mw": 0.2}', "text/plain", 415, {"error": NOT_JSON + "text/plain"}),
        (b"{not json", "application/json", 400, {"error": "the body is not valid JSON"}),
        (b"[]", "application/json", 400, {"error": "the body must be a JSON object"}),
        (b"null", "application/json", 400, {"error": "the body must be a JSON object"}),
        (
            b'{"p_mw": 1}',
            "application/json",
            422,
            {"error": "invalid input: p_mw", "fields": {"p_mw": "unknown field"}},
        ),
        (  # a known input, but tests.sims:fixed takes none
            b'{"load_p_mw": 0.2}',
            "application/json",
            422,
            {
                "error": "invalid input: load_p_mw",
                "fields": {"load_p_mw": "not taken by this simulation (tests.sims:fixed)"},
            },
        ),
    ],
)
async def test_run_body_must_be_a_json_object_of_inputs(
    client: Client,
    settings: Settings,
    redis_client: aioredis.Redis,
    body: bytes,
    content_type: str,
    status: int,
    answer: dict[str, Any],
) -> None:
    resp = await client.post("/run-simulation", data=body, headers={"Content-Type": content_type})
    assert (resp.status, resp.content_type, await resp.json()) == (status, "application/json", answer)
    assert rows(settings) == []
    assert await redis_client.get(LATEST_KEY) is None
    assert (await client.post("/run-simulation", json={})).status == 200


async def test_websocket_connections_are_capped(make_client: ClientFactory) -> None:
    client = await make_client(max_subscribers=2)
    async with (
        client.ws_connect("/simulator-subscribe"),
        client.ws_connect("/graphql", protocols=["graphql-transport-ws"]),
    ):
        for path in ("/simulator-subscribe", "/graphql"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(path, protocols=["graphql-transport-ws"])
            assert refused.value.status == 503
    async with client.ws_connect("/simulator-subscribe") as ws:  # the slots were given back
        await ws.receive_json(timeout=5)


# --- faults ---------------------------------------------------------------------------------


async def test_a_dead_worker_is_replaced_and_later_runs_succeed(
    make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERSIM_TEST_MARKER", str(tmp_path / "died"))  # inherited by the workers
    client = await make_client(simulation="tests.sims:dies_once")
    died = await client.post("/run-simulation")
    assert died.status == 500
    assert "worker process running this simulation died" in (await died.json())["error"]
    assert (await died.json())["simulation"]["status"] == "failed"
    later = await client.post("/run-simulation")
    assert later.status == 200
    assert (await later.json())["id"] == 2  # the failed run is stored as run 1
    for _ in range(100):  # the replacement pool reports itself warm again
        if (await (await client.get("/healthz")).json())["workers"] == 1:
            break
        await asyncio.sleep(0.05)
    assert (await (await client.get("/healthz")).json()) == {
        "status": "ok",
        "redis": "ok",
        "database": "ok",
        "workers": 1,
    }


async def test_a_locked_database_is_503_and_nothing_is_published(
    client: Client, settings: Settings, redis_client: aioredis.Redis
) -> None:
    first = await (await client.post("/run-simulation")).json()
    locker = sqlite3.connect(settings.database_path, timeout=0.1)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        await expect_error(await client.post("/run-simulation"), 503, "the run was not stored")
        assert json.loads(await redis_client.get(LATEST_KEY)) == first
        assert (await (await client.get("/active-power")).json())["id"] == first["id"]
    finally:
        locker.rollback()
        locker.close()
    assert (await client.post("/run-simulation")).status == 200  # recovered
    assert [r[0] for r in rows(settings)] == [1, 2]


def test_sigterm_lets_runs_in_flight_finish(tmp_path: Path, redis_url: str) -> None:
    marker = tmp_path / "started"
    env = server_env(
        tmp_path, redis_url, POWERSIM_SIMULATION="tests.test_rest:slow_and_marked", POWERSIM_TEST_MARKER=str(marker)
    )
    proc = start_server(env)
    try:
        wait_healthy(proc, env["PORT"])
        answer: dict[str, Any] = {}
        runner = threading.Thread(target=lambda: answer.update(r=post(env["PORT"], "/run-simulation")))
        runner.start()
        deadline = time.monotonic() + 20
        while not marker.exists():  # then the run is in its worker, for 1.5 s
            assert time.monotonic() < deadline, "the run never reached its worker"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        runner.join(20)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    status, body = answer["r"]
    assert status == 200, body
    assert json.loads(body)["active_power"] == 0.2
    with closing(sqlite3.connect(tmp_path / "powersim.db")) as db:  # `with db` alone never closes it
        assert db.execute("SELECT count(*) FROM simulations").fetchone() == (1,)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


# --- access control -------------------------------------------------------------------------


async def test_api_token_guards_runs_only(make_client: ClientFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(api_token=API_TOKEN)
    resp = await client.post("/run-simulation")
    await expect_error(resp, 401, "needs the API token")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = {"Authorization": "Bearer " + API_TOKEN[:-1] + "X"}
    await expect_error(await client.post("/run-simulation", headers=wrong), 401, "API token")
    await expect_error(await client.post("/run-simulation", headers={"Authorization": API_TOKEN}), 401, "API token")
    ok = await client.post("/run-simulation", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert ok.status == 200
    assert (await client.get("/active-power")).status == 200  # reads stay open

    mutation = {"query": "mutation { runSimulation { id } }"}
    body = await (await client.post("/graphql", json=mutation)).json()
    assert "API token" in body["errors"][0]["message"]
    body = await (await client.post("/graphql", json=mutation, headers={"Authorization": f"Bearer {API_TOKEN}"})).json()
    assert body["data"]["runSimulation"]["id"] == "2"
    assert API_TOKEN not in caplog.text
    assert API_TOKEN[:-1] not in caplog.text


async def test_read_token_guards_reads(make_client: ClientFactory) -> None:
    client = await make_client(api_token=API_TOKEN, read_token=READ_TOKEN)
    for path in ("/active-power", "/simulations", "/simulations/1"):
        await expect_error(await client.get(path), 401, "needs the read token")
    body = await (await client.post("/graphql", json={"query": "{ latest { id } }"})).json()
    assert "read token" in body["error"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/simulator-subscribe")
    assert refused.value.status == 401

    assert (await client.get("/healthz")).status == 200  # probes stay open
    assert (await client.get("/openapi.json")).status == 200
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    await expect_error(await client.post("/run-simulation", headers=read), 401, "API token")  # read is not write
    assert (await client.post("/run-simulation", headers={"Authorization": f"Bearer {API_TOKEN}"})).status == 200
    assert (await client.get("/active-power", headers=read)).status == 200
    assert (await client.get("/active-power", headers={"Authorization": f"Bearer {API_TOKEN}"})).status == 200
    async with client.ws_connect("/simulator-subscribe", headers=read) as ws:
        assert (await ws.receive_json(timeout=5))["id"] == 1


async def test_websocket_origins(make_client: ClientFactory) -> None:
    client = await make_client(allowed_origins=("https://grid.example",))
    for path in ("/simulator-subscribe", "/graphql"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(
                path, headers={"Origin": "https://evil.example"}, protocols=["graphql-transport-ws"]
            )
        assert refused.value.status == 403
    allowed = [{"Origin": "https://grid.example"}, {}, {"Origin": f"http://127.0.0.1:{client.port}"}]
    for headers in allowed:  # listed, no Origin (not a browser), same origin
        async with client.ws_connect("/simulator-subscribe", headers=headers) as ws:
            assert "id" in await ws.receive_json(timeout=5)


async def test_data_files_are_private(client: Client, settings: Settings) -> None:
    await client.post("/run-simulation")
    assert stat.S_IMODE((await asyncio.to_thread(os.stat, settings.database_path.parent)).st_mode) == 0o700
    for suffix in ("", "-wal"):
        path = Path(f"{settings.database_path}{suffix}")
        assert stat.S_IMODE((await asyncio.to_thread(os.stat, path)).st_mode) == 0o600, path
