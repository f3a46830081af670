"""Watches `powersim:latest` through keyspace notifications and feeds the hub.

This is the only path to subscribers: a POST here, a POST on another server process, and
`redis-cli SET` all arrive as the same notification, are read, validated and published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .constants import (
    LATEST_KEY,
    REDIS_CALL_TIMEOUT_S,
    WATCH_BACKOFF_CAP_S,
    WATCH_BACKOFF_START_S,
    WATCH_PING_INTERVAL_S,
    WATCH_PING_TIMEOUT_S,
)
from .hub import Hub
from .latest import LatestStore, ValueMissing, bounded
from .models import InvalidResult, SimulationResult, parse_result

log = logging.getLogger(__name__)

# Our own PING payload: redis-py swallows the answers to its health-check pings, not this one.
_PING = "powersim-watcher"


class Watcher:
    """Holds the latest good result in memory and keeps it in step with Redis."""

    def __init__(self, store: LatestStore, hub: Hub, db_index: int) -> None:
        self.store = store
        self.hub = hub
        self.channel = f"__keyspace@{db_index}__:{LATEST_KEY}"
        self.current: SimulationResult | None = None
        self.loaded = False
        self.redis_up = True
        self.on_connect: Callable[[], Awaitable[None]] | None = None
        self.subscribed = asyncio.Event()  # set while subscribed and resynchronized
        # Read sequence numbers, not clock times: uvloop's clock ticks in milliseconds, so a read
        # issued in the same millisecond as a write may have been issued before it.
        self.reads_started = 0
        self.last_read_done = 0  # sequence number of the newest completed read
        self._read_done = asyncio.Condition()

    async def refresh(self) -> None:
        """Read the key, validate it, and publish it if it differs from the current result."""
        self.reads_started += 1
        number = self.reads_started
        try:
            raw = await self.store.read_raw()
            self._accept(parse_result(raw))
        except ValueMissing:
            if self.current is not None:
                log.info("%s was deleted; still serving the last good result", LATEST_KEY)
        except InvalidResult as exc:
            log.warning("rejected the value written to %s: %s", LATEST_KEY, exc)
        self.loaded = True
        async with self._read_done:
            self.last_read_done = max(self.last_read_done, number)
            self._read_done.notify_all()

    def _accept(self, result: SimulationResult) -> None:
        if result != self.current:
            self.current = result
            self.hub.publish(result)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate` holds after some completed read (checked after each one)."""
        async with self._read_done:
            await self._read_done.wait_for(predicate)

    async def wait_for_read_after(self, mark: int, done: Callable[[], bool] = lambda: False) -> None:
        """Wait for a read issued after `mark` (a `reads_started` taken earlier), or `done`."""
        await self.wait_until(lambda: self.last_read_done > mark or done())

    async def run(self) -> None:
        """Subscribe, resync, follow events; on any Redis failure back off and do it again."""
        backoff = WATCH_BACKOFF_START_S
        while True:
            try:
                async with self.store.client.pubsub() as pubsub:
                    await bounded(self._subscribe(pubsub))
                    await self._resync()
                    backoff = WATCH_BACKOFF_START_S
                    await self._follow(pubsub)
            except (RedisError, OSError) as exc:
                self._went_down(exc)
            except Exception:  # the top of a background loop: log, back off, keep watching
                self.subscribed.clear()
                log.exception("watcher failed; restarting it")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, WATCH_BACKOFF_CAP_S)

    async def _subscribe(self, pubsub: PubSub) -> None:
        """Subscribe and wait for Redis to confirm: only then can no later write be missed."""
        await pubsub.subscribe(self.channel)
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "subscribe":
                return

    async def _follow(self, pubsub: PubSub) -> None:
        """Read events with a deadline; ping a quiet subscription and give up on a silent one.

        A connection that a NAT or load balancer dropped without a reset never delivers another
        byte, and a plain blocking read would wait on it forever.
        """
        loop = asyncio.get_running_loop()
        heard = loop.time()
        answer_due: float | None = None
        while True:
            wait = (answer_due if answer_due is not None else heard + WATCH_PING_INTERVAL_S) - loop.time()
            message = await _read(pubsub, max(wait, 0.0))
            now = loop.time()
            if message is None and answer_due is not None and now >= answer_due:
                # A loop that stalled past the deadline may not have read an answer already here.
                message = await _read(pubsub, 0.01)
            if message is not None:
                heard, answer_due = now, None
                if message["type"] == "message":
                    await self.refresh()
                elif message["type"] == "subscribe":  # redis-py renewed it on a new connection
                    raise RedisConnectionError("the subscription was renewed; resynchronizing")
            elif answer_due is not None and now >= answer_due:
                # The path to Redis is likely dead for the idle pooled connections too: drop
                # them, so that the resync does not wait out a call timeout on one of them.
                await self.store.client.connection_pool.disconnect(inuse_connections=False)
                raise RedisConnectionError(f"the subscription did not answer a ping within {WATCH_PING_TIMEOUT_S} s")
            elif answer_due is None and now - heard >= WATCH_PING_INTERVAL_S:
                await bounded(pubsub.ping(_PING))
                answer_due = now + WATCH_PING_TIMEOUT_S

    async def _resync(self) -> None:
        # Subscribed first, then read: nothing written in between can be missed.
        await self.store.enable_notifications()
        if self.on_connect is not None:
            await self.on_connect()
        await self.refresh()
        self.subscribed.set()
        if not self.redis_up:
            self.redis_up = True
            log.warning("Redis at %s is reachable again; resynchronized", self.store.url_for_logs)

    def _went_down(self, exc: BaseException) -> None:
        self.subscribed.clear()
        if self.redis_up:
            self.redis_up = False
            log.warning(
                "lost Redis at %s (%s); serving the last known result and retrying",
                self.store.url_for_logs,
                exc,
            )


async def _read(pubsub: PubSub, wait: float) -> dict[str, Any] | None:
    """get_message with a hard deadline. On a read error redis-py reconnects the subscription
    once before it raises, and that handshake has no timeout of its own: a Redis (or a proxy in
    front of it) that accepts the connection and never answers would hold the watcher forever."""
    try:
        async with asyncio.timeout(wait + WATCH_PING_TIMEOUT_S + REDIS_CALL_TIMEOUT_S):
            message: dict[str, Any] | None = await pubsub.get_message(timeout=wait)
    except TimeoutError:
        raise RedisConnectionError("the subscription stopped answering") from None
    return message
