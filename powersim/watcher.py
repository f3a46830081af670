"""Watches `powersim:latest` through keyspace notifications and feeds the hub.

This is the only path to subscribers: a POST here, a POST on another server process, and
`redis-cli SET` all arrive as the same notification, are read, validated and published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from .constants import LATEST_KEY, WATCH_BACKOFF_CAP_S, WATCH_BACKOFF_START_S
from .hub import Hub
from .latest import LatestStore, ValueMissing
from .models import InvalidResult, SimulationResult, parse_result

log = logging.getLogger(__name__)


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
        self.reads = 0  # completed reads of the key
        self.last_read_started = 0.0  # loop time at which the latest completed read was issued
        self._read_done = asyncio.Condition()

    async def refresh(self) -> None:
        """Read the key, validate it, and publish it if it differs from the current result."""
        started = asyncio.get_running_loop().time()
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
            self.reads += 1
            self.last_read_started = max(self.last_read_started, started)
            self._read_done.notify_all()

    def _accept(self, result: SimulationResult) -> None:
        if result != self.current:
            self.current = result
            self.hub.publish(result)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate` holds after some completed read (checked after each one)."""
        async with self._read_done:
            await self._read_done.wait_for(predicate)

    async def run(self) -> None:
        """Subscribe, resync, follow events; on any Redis failure back off and do it again."""
        backoff = WATCH_BACKOFF_START_S
        while True:
            try:
                async with self.store.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    await self._resync()
                    backoff = WATCH_BACKOFF_START_S
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            await self.refresh()
            except (RedisError, OSError) as exc:
                self._went_down(exc)
            except Exception:  # the top of a background loop: log, back off, keep watching
                log.exception("watcher failed; restarting it")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, WATCH_BACKOFF_CAP_S)

    async def _resync(self) -> None:
        # Subscribed first, then read: nothing written in between can be missed.
        if not self.redis_up:
            self.redis_up = True
            log.warning("Redis at %s is reachable again; resynchronizing", self.store.url_for_logs)
        await self.store.enable_notifications()
        if self.on_connect is not None:
            await self.on_connect()
        await self.refresh()
        self.subscribed.set()

    def _went_down(self, exc: BaseException) -> None:
        self.subscribed.clear()
        if self.redis_up:
            self.redis_up = False
            log.warning(
                "lost Redis at %s (%s); serving the last known result and retrying",
                self.store.url_for_logs,
                exc,
            )
