"""The Redis side of the latest result: connect, write with compare-and-set, read, notifications."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import TypeVar

import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .constants import (
    LATEST_KEY,
    MAX_VALUE_BYTES,
    NOTIFY_FLAGS,
    REDIS_CALL_TIMEOUT_S,
    REDIS_STARTUP_WAIT_S,
)
from .errors import StartupError
from .models import SimulationResult, format_time, parse_result

log = logging.getLogger(__name__)

T = TypeVar("T")

# Keep the newest launch: skip the write only when the stored value has a well-formed
# launched_at at least as new as ours. Anything else there (no launched_at, not JSON,
# oversized, not a string) is replaced. Runs inside Redis, so it is atomic across processes.
_PUBLISH = """
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('STRLEN', KEYS[1]) <= tonumber(ARGV[3]) then
  local ok, obj = pcall(cjson.decode, redis.call('GET', KEYS[1]))
  if ok and type(obj) == 'table' then
    local t = obj['launched_at']
    if type(t) == 'string' and t:match('^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%dZ$') and t >= ARGV[2] then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

# Read at most MAX_VALUE_BYTES + 1 bytes, so an outside writer's huge value is never read whole.
_READ = """
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return false end
if t ~= 'string' then return {t} end
return redis.call('GETRANGE', KEYS[1], 0, tonumber(ARGV[1]))
"""


class ValueMissing(Exception):
    """The key does not exist."""


class LatestStore:
    """Reads and writes `powersim:latest`; every method may raise RedisError."""

    def __init__(self, client: aioredis.Redis, url_for_logs: str) -> None:
        self.client = client
        self.url_for_logs = url_for_logs
        self._publish = client.register_script(_PUBLISH)
        self._read = client.register_script(_READ)
        self._config_warned = False

    async def publish(self, result: SimulationResult) -> bool:
        """Write `result` unless a more recently launched one is there; True if written."""
        assert result.launched_at is not None
        written = await bounded(
            self._publish(keys=[LATEST_KEY], args=[result.to_json(), format_time(result.launched_at), MAX_VALUE_BYTES])
        )
        return bool(written)

    async def restore_if_missing(self, result: SimulationResult) -> bool:
        return bool(await bounded(self.client.set(LATEST_KEY, result.to_json(), nx=True)))

    async def read_raw(self) -> bytes:
        """The stored value, cut at MAX_VALUE_BYTES + 1 bytes; ValueMissing if there is none."""
        value = await bounded(self._read(keys=[LATEST_KEY], args=[MAX_VALUE_BYTES]))
        if value is None:
            raise ValueMissing
        if isinstance(value, list):
            kind = value[0].decode() if isinstance(value[0], bytes) else str(value[0])
            return f"<a Redis {kind}, not a string>".encode()
        return bytes(value)

    async def read(self) -> SimulationResult | None:
        """The stored result, or None when missing; raises InvalidResult when it is not one."""
        try:
            return parse_result(await self.read_raw())
        except ValueMissing:
            return None

    async def ping(self) -> bool:
        try:
            return bool(await bounded(self.client.ping()))
        except (RedisError, OSError):
            return False

    async def enable_notifications(self) -> None:
        """Add the keyspace-event flags the watcher needs, keeping those already set."""
        try:
            current = (await bounded(self.client.config_get("notify-keyspace-events"))).get(
                "notify-keyspace-events", ""
            )
            current = current.decode() if isinstance(current, bytes) else str(current)
            missing = "".join(f for f in NOTIFY_FLAGS if f not in current and not (f in "$gx" and "A" in current))
            if missing:
                await bounded(self.client.config_set("notify-keyspace-events", current + missing))
        except ResponseError as exc:
            if not self._config_warned:
                self._config_warned = True
                log.warning(
                    "Redis at %s refused CONFIG (%s): set notify-keyspace-events to include %s in its "
                    "configuration, or live updates from writers will not be seen",
                    self.url_for_logs,
                    exc,
                    NOTIFY_FLAGS,
                )


async def bounded(call: Awaitable[T]) -> T:
    """Run one Redis call under a deadline; a timeout is a RedisError like any other outage.

    The deadline is ours, not redis-py's socket_timeout: a task cancelled while inside the
    client's own read timeout can lose the cancellation (it then never finishes), which would
    hang shutdown. An asyncio.timeout around the call does not have that problem.
    """
    try:
        async with asyncio.timeout(REDIS_CALL_TIMEOUT_S):
            return await call
    except TimeoutError:
        raise RedisTimeoutError(f"no answer from Redis within {REDIS_CALL_TIMEOUT_S} s") from None


def make_client(url: str) -> aioredis.Redis:
    # Fail fast rather than hold a request for seconds: a run must succeed while Redis is down.
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CALL_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        health_check_interval=15,
    )


@asynccontextmanager
async def open_latest_store(url: str, url_for_logs: str) -> AsyncIterator[LatestStore]:
    """Connect, retrying for a few seconds: Redis started beside us may still be coming up."""
    client = make_client(url)
    try:
        deadline = asyncio.get_running_loop().time() + REDIS_STARTUP_WAIT_S
        while True:
            try:
                await bounded(client.ping())
                break
            except (RedisError, OSError) as exc:
                if asyncio.get_running_loop().time() >= deadline:
                    raise StartupError(
                        f"cannot reach Redis at {url_for_logs} after {REDIS_STARTUP_WAIT_S:.0f} s: {exc}"
                    ) from exc
                await asyncio.sleep(0.25)
        # Notifications are enabled by the watcher on every (re)connect, before the app serves.
        yield LatestStore(client, url_for_logs)
    finally:
        await client.aclose()
