"""The REST contract: the OpenAPI document matches the routes, schemathesis fuzzes the live
server against it, and hypothesis throws arbitrary bytes at the outside-writer path."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from powersim.app import create_app
from powersim.constants import LATEST_KEY, MAX_VALUE_BYTES
from powersim.settings import Settings

from .processes import server_env, start_server, wait_healthy
from .redis_server import RedisServer
from .test_models import documents

SPEC_PATH = Path(__file__).resolve().parent.parent / "powersim" / "openapi.json"
SPEC = json.loads(SPEC_PATH.read_text())
NOT_IN_SPEC = {("GET", "/simulator-subscribe"), ("*", "/graphql")}  # websocket and GraphQL


def test_spec_matches_the_routes(tmp_path: Path) -> None:
    app = create_app(Settings(database_path=tmp_path / "x.db"))
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method.upper(), path) for path, ops in SPEC["paths"].items() for method in ops}
    assert routes - NOT_IN_SPEC == documented


async def test_spec_is_served(client: Any) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    assert await resp.json() == SPEC


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[str]:
    """A real server process (schemathesis's tests are synchronous, so not the in-loop client)."""
    env = server_env(tmp_path_factory.mktemp("live"), redis_server.url, POWERSIM_WORKERS="2")
    proc = start_server(env)
    try:
        wait_healthy(proc, env["PORT"])
        yield f"http://127.0.0.1:{env['PORT']}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


schema = schemathesis.openapi.from_path(SPEC_PATH)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_spec(case: schemathesis.Case, live_server: str) -> None:
    """No 5xx for any generated input, and every response matches the document."""
    case.call_and_validate(base_url=live_server)


def commandstat_calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def _as_case(case: tuple[Any, dict[str, Any] | None]) -> tuple[bytes, dict[str, Any] | None]:
    doc, expected = case
    try:
        raw = json.dumps(doc).encode()
    except RecursionError:
        return b"[" * 1500 + b"]" * 1500, None
    return raw, expected if len(raw) <= MAX_VALUE_BYTES else None


# Expected outcomes come from how each value was generated (tests/test_models.py), never from
# the parser under test. Bytes that do not start an object are rejected by the contract itself.
NOT_OBJECTS = st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)).filter(
    lambda raw: not raw.lstrip().startswith(b"{")
)
CASES = st.one_of(documents().map(_as_case), NOT_OBJECTS.map(lambda raw: (raw, None)))


@given(case=CASES)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_value_is_pushed_exactly_as_the_contract_says(
    live_server: str, redis_server: RedisServer, case: tuple[bytes, dict[str, Any] | None]
) -> None:
    """Whatever an outside writer stores, subscribers see it only if it is a valid result,
    exactly as the contract reads it, and the watcher keeps working afterwards."""
    raw, expected = case
    event("valid result" if expected is not None else "rejected")
    asyncio.run(_write_and_observe(live_server, redis_server, raw, expected))


async def _write_and_observe(base: str, redis_server: RedisServer, raw: bytes, expected: dict[str, Any] | None) -> None:
    client = redis_server.client()
    # Unique per example: an equal sentinel would (rightly) not be pushed again.
    sentinel = {"id": None, "active_power": -float(time.monotonic_ns()), "reactive_power": -1.0, "launched_at": None}
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{base}/simulator-subscribe") as ws:
            current = await ws.receive_json(timeout=5)
            for value in (raw, json.dumps(sentinel).encode()):
                # Wait for the watcher's read of each write (reads are EVALSHA calls), so that
                # nothing is coalesced away and every value is judged on its own.
                before = commandstat_calls(client, "evalsha")
                client.set(LATEST_KEY, value)
                for _ in range(500):
                    if commandstat_calls(client, "evalsha") > before:
                        break
                    await asyncio.sleep(0.002)
            received = []
            while not received or received[-1] != sentinel:
                received.append(await ws.receive_json(timeout=5))
    finally:
        client.close()
    pushed = received[:-1]
    if expected is None or expected == current:
        assert pushed == [], f"{raw!r} was pushed as {pushed}"
    else:
        assert pushed == [expected]
