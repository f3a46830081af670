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
from powersim.constants import LATEST_KEY
from powersim.models import InvalidResult, parse_result
from powersim.settings import Settings

from .processes import server_env, start_server, wait_healthy
from .redis_server import RedisServer

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


EXTRA_KEYS = st.dictionaries(
    st.sampled_from(["id", "launched_at", "note"]),
    st.one_of(st.integers(), st.text(max_size=30), st.none()),
    max_size=2,
)
NEAR_MISSES = st.builds(  # JSON objects close to valid ones, where the validation has to be right
    lambda p, q, extra: json.dumps({"active_power": p, "reactive_power": q, **extra}).encode(),
    st.one_of(st.floats(), st.integers(), st.text(max_size=5), st.none(), st.booleans()),
    st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**20), 10**20)),
    EXTRA_KEYS,
)


@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode), NEAR_MISSES))
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_bytes_are_accepted_or_rejected_without_a_push(
    live_server: str, redis_server: RedisServer, raw: bytes
) -> None:
    """Whatever an outside writer stores, subscribers see it only if it is a valid result,
    exactly as validated, and the watcher keeps working afterwards."""
    try:
        expected: dict[str, Any] | None = parse_result(raw).to_dict()
    except InvalidResult:
        expected = None
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
