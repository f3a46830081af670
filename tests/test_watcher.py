"""The watcher against a connection that dies silently (a TCP proxy that stops forwarding),
against Redis refusing writes, and the read-your-write rule, with real Redis and sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from powersim.constants import (
    LATEST_KEY,
    REDIS_CALL_TIMEOUT_S,
    WATCH_PING_INTERVAL_S,
    WATCH_PING_TIMEOUT_S,
)
from powersim.keys import POWERSIM
from powersim.models import SimulationResult

from .conftest import ClientFactory
from .redis_server import RedisServer
from .tcp_proxy import SilentProxy
from .test_live import next_json, value
from .waiting import eventually

Client = TestClient[Any, Any]

# The documented bound (docs/redis.md): a dead subscription is noticed within the ping interval
# plus the ping timeout; reconnecting may meet a connection in use that died too (a call timeout).
PUSH_BOUND_S = WATCH_PING_INTERVAL_S + WATCH_PING_TIMEOUT_S + REDIS_CALL_TIMEOUT_S + 1.0


@pytest.fixture
async def proxy(redis_server: RedisServer, redis_url: str) -> AsyncIterator[SilentProxy]:
    proxy = SilentProxy("127.0.0.1", redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.close()


async def health(client: Client) -> dict[str, Any]:
    return await (await client.get("/healthz")).json()  # type: ignore[no-any-return]


async def health_becomes(client: Client, status: str, within: float) -> dict[str, Any]:
    """Poll /healthz until it reports `status`; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    body: dict[str, Any] = {}
    while loop.time() < deadline:
        body = await health(client)
        if body["status"] == status:
            return body
        await asyncio.sleep(0.05)
    pytest.fail(f"/healthz did not report {status!r} within {within} s: {body}")


async def test_a_silently_dropped_connection_is_replaced_within_the_bound(
    make_client: ClientFactory, proxy: SilentProxy, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="powersim.watcher")
    client = await make_client(redis_url=proxy.url)
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        await redis_client.set(LATEST_KEY, value(1.0))
        assert (await next_json(ws))["active_power"] == 1.0
        assert proxy.freeze() >= 2  # the subscription and the command connection
        loop = asyncio.get_running_loop()
        written = loop.time()
        await redis_client.set(LATEST_KEY, value(2.0))
        pushed = await next_json(ws, wait=PUSH_BOUND_S + 5)
        took = loop.time() - written
    assert pushed["active_power"] == 2.0
    assert took <= PUSH_BOUND_S, f"pushed after {took:.1f} s, documented bound {PUSH_BOUND_S:.1f} s"
    assert (await health(client))["status"] == "ok"
    assert sum("lost Redis" in r.getMessage() for r in caplog.records) == 1


async def test_health_is_degraded_while_the_watcher_cannot_subscribe(
    make_client: ClientFactory, proxy: SilentProxy, redis_client: aioredis.Redis
) -> None:
    client = await make_client(redis_url=proxy.url)
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        # Subscriptions die silently (now and on every retry); plain commands still work, so a
        # ping on the command connection alone would call this healthy.
        proxy.silence_subscriptions = True
        await redis_client.set(LATEST_KEY, value(3.0))
        body = await health_becomes(client, "degraded", PUSH_BOUND_S + 5)
        assert body == {"status": "degraded", "redis": "down", "database": "ok", "workers": 1}
        assert (await client.post("/run-simulation")).status == 200  # runs still work
        proxy.silence_subscriptions = False
        # The watcher resubscribes, re-reads the key and pushes what it missed.
        seen = [await next_json(ws, wait=PUSH_BOUND_S + 10)]
        assert seen[0]["id"] == 1  # the run made while degraded, newer than the outside 3.0
        assert (await health(client))["status"] == "ok"


async def test_a_result_redis_refused_is_written_without_a_reconnect(
    client: Client, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """OOM refuses the write while every connection (the subscription too) stays up."""
    caplog.set_level(logging.INFO)
    watcher = client.app[POWERSIM].watcher
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        await redis_client.config_set("maxmemory-policy", "noeviction")
        await redis_client.config_set("maxmemory", "1")
        try:
            result = await (await client.post("/run-simulation")).json()
            assert await redis_client.get(LATEST_KEY) is None
        finally:
            await redis_client.config_set("maxmemory", "0")
        assert await next_json(ws, wait=10) == result
    assert json.loads(await redis_client.get(LATEST_KEY)) == result
    assert watcher.subscribed.is_set()
    messages = [r.getMessage() for r in caplog.records]
    assert not any("lost Redis" in m for m in messages), "the watcher reconnected: this proves nothing"
    assert sum("refused the write" in m for m in messages) == 1
    assert sum("is now written" in m for m in messages) == 1


async def test_read_your_write_waits_for_a_read_issued_after_the_write(
    client: Client, redis_client: aioredis.Redis
) -> None:
    """A read already in flight when the write lands must not count, whatever the clock says."""
    watcher = client.app[POWERSIM].watcher
    mark = watcher.reads_started
    waiter = asyncio.create_task(watcher.wait_for_read_after(mark))
    await asyncio.sleep(0)
    assert not waiter.done()
    watcher.reads_started += 1  # a read issued after the mark, not yet complete
    issued = watcher.reads_started
    await watcher.refresh()  # issued later still, and completes first
    await asyncio.wait_for(waiter, 5)
    assert watcher.last_read_done > issued


async def test_a_read_in_flight_during_a_write_does_not_satisfy_read_your_write(
    client: Client, redis_client: aioredis.Redis
) -> None:
    """The race behind "a GET right after the POST may show the previous result": a read issued
    just before the write, completing in the same clock tick (uvloop ticks in milliseconds)."""
    powersim = client.app[POWERSIM]
    watcher = powersim.watcher
    for n in range(1, 41):
        previous = value(100.0 + n)
        await redis_client.set(LATEST_KEY, previous)
        async with asyncio.timeout(5):
            await watcher.wait_until(
                lambda n=n: watcher.current is not None and watcher.current.active_power == 100 + n
            )
        ours = SimulationResult(n, 0.1, 0.05, datetime.now(UTC))
        in_flight = asyncio.create_task(watcher.refresh())  # reads the previous value
        await asyncio.sleep(0)
        await powersim._publish(ours)
        assert watcher.current == ours, f"round {n}: the answer went out while the watcher held {watcher.current}"
        await in_flight


async def test_a_reconnect_that_is_never_answered_does_not_hold_the_watcher(
    make_client: ClientFactory, proxy: SilentProxy
) -> None:
    """redis-py reconnects a failed subscription once by itself, with no timeout on that
    handshake: behind a proxy whose backend is gone, the watcher would wait there forever,
    still calling itself subscribed."""
    client = await make_client(redis_url=proxy.url)
    watcher = client.app[POWERSIM].watcher
    assert watcher.subscribed.is_set()
    proxy.blackhole_new = True
    proxy.close_flows()
    loop = asyncio.get_running_loop()
    started = loop.time()
    # Not /healthz: its own ping through the proxy fails too, whatever the watcher does.
    await eventually(lambda: not watcher.subscribed.is_set(), PUSH_BOUND_S + 5)
    assert loop.time() - started < PUSH_BOUND_S + 1
    proxy.blackhole_new = False
    async with asyncio.timeout(30):
        await watcher.subscribed.wait()  # and it comes back once Redis answers again
