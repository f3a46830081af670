"""The Redis side of the latest result: connect, write with compare-and-set, read, notifications."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .constants import (
    LATEST_KEY,
    MAX_VALUE_BYTES,
    NOTIFY_FLAGS,
    REDIS_CALL_TIMEOUT_S,
    REDIS_CLOCK_ALLOWANCE_S,
    REDIS_KEEPALIVE_IDLE_S,
    REDIS_KEEPALIVE_INTERVAL_S,
    REDIS_KEEPALIVE_PROBES,
    REDIS_STARTUP_WAIT_S,
)
from .errors import StartupError
from .models import SimulationResult, format_time, parse_result

log = logging.getLogger(__name__)

T = TypeVar("T")

# Keep the newest launch. The stored value holds our write back only when it is a *launch*:
# a value in powersim's own compact form (exactly what SimulationResult.to_json writes for a
# converged run, or an earlier version's: without the network, or without status and inputs;
# every field checked: JSON number grammar, finite, id a positive integer or null, a real
# calendar time, inputs null or names and numbers), launched at or after ours, and not later
# than Redis's own clock plus an allowance.
# Every value of that form is one the watcher accepts (models.parse_result), which a property
# test checks against real Redis; anything else there (an invalid value, a valid one in another
# form, a dated one) is replaced. Runs inside Redis, so it is atomic across processes.
# Returns {1} when written over nothing comparable, {2, t} when written over a value dated
# beyond the allowance, {0, t} when a launch at t >= ours is kept.
_PUBLISH = """
local function json_number(s)
  local int, rest = s:match('^%-?(%d+)(.*)$')
  if not int or (#int > 1 and int:sub(1, 1) == '0') then return nil end
  if rest:sub(1, 1) == '.' then
    rest = rest:match('^%.%d+(.*)$')
    if not rest then return nil end
  end
  if rest ~= '' and not rest:match('^[eE][%+%-]?%d+$') then return nil end
  local x = tonumber(s)
  if x ~= x or x == math.huge or x == -math.huge then return nil end
  return x
end

local function epoch_seconds(t)
  local y, mo, d, h, mi, s, us = t:match('^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d%d%d%d)Z$')
  if not y then return nil end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s)
  local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
  local days_in = {31, leap and 29 or 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
  if y < 1 or mo < 1 or mo > 12 or d < 1 or d > days_in[mo] or h > 23 or mi > 59 or s > 59 then return nil end
  -- days from 1970-01-01 (proleptic Gregorian), after H. Hinnant's days_from_civil
  local yy = mo <= 2 and y - 1 or y
  local era = math.floor(yy / 400)
  local yoe = yy - era * 400
  local doy = math.floor((153 * (mo + (mo > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + h * 3600 + mi * 60 + s + tonumber(us) / 1e6
end

-- What may follow launched_at in our own form: nothing (powersim wrote that before runs had
-- inputs), or the status, the network (since runs have one: null or an id; not before) and the
-- inputs: null, or an object of lower-case names and numbers.
local function tail_ok(rest)
  if rest == '}' then return true end
  local after = rest:match('^,"status":"converged"(.*)$')
  if not after then return false end
  local network, more = after:match('^,"network":"([a-z0-9][a-z0-9_.%-]*)"(.*)$')
  if network then
    if #network > 64 then return false end
    after = more
  elseif after:sub(1, 15) == ',"network":null' then
    after = after:sub(16)
  end
  local inputs = after:match('^,"inputs":(.*)}$')
  if not inputs then return false end
  if inputs == 'null' or inputs == '{}' then return true end
  local body = inputs:match('^{(.*)}$')
  if not body then return false end
  for entry in (body .. ','):gmatch('([^,]*),') do
    local name, x = entry:match('^"([a-z_][a-z0-9_]*)":(.*)$')
    if not name or #name > 64 or not json_number(x) then return false end
  end
  return true
end

-- The launch time of a stored value in our own form, or nil.
local function launch_of(v)
  local id, p, q, t, rest = v:match(
    '^{"id":([^,]*),"active_power":([^,]*),"reactive_power":([^,]*),"launched_at":"([^"]*)"(.*)$')
  if not id then return nil end
  if id ~= 'null' and not id:match('^[1-9]%d*$') then return nil end
  if not json_number(p) or not json_number(q) then return nil end
  if not tail_ok(rest) then return nil end
  local seconds = epoch_seconds(t)
  if not seconds then return nil end
  return t, seconds
end

if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('STRLEN', KEYS[1]) <= tonumber(ARGV[3]) then
  local t, seconds = launch_of(redis.call('GET', KEYS[1]))
  if t then
    local now = redis.call('TIME')
    if seconds > tonumber(now[1]) + tonumber(now[2]) / 1e6 + tonumber(ARGV[4]) then
      redis.call('SET', KEYS[1], ARGV[1])
      return {2, t}
    end
    if t >= ARGV[2] then
      return {0, t}
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return {1}
"""

# Only the check, for tests that hold it against the watcher's validation: 1, or nil.
LAUNCH_CHECK = _PUBLISH[: _PUBLISH.index("if redis.call('TYPE'")] + "return launch_of(ARGV[1])\n"

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
        """Write `result` unless a launch at least as recent is there; True if written."""
        assert result.launched_at is not None
        ours = format_time(result.launched_at)
        answer: list[Any] = await bounded(
            self._publish(keys=[LATEST_KEY], args=[result.to_json(), ours, MAX_VALUE_BYTES, REDIS_CLOCK_ALLOWANCE_S])
        )
        outcome, stored = int(answer[0]), _text(answer[1]) if len(answer) > 1 else None
        if outcome == 0:
            log.debug("run %s (launched %s) not written: %s holds a launch of %s", result.id, ours, LATEST_KEY, stored)
        elif outcome == 2:
            log.info(
                "run %s replaced a value in %s dated %s, more than %g s ahead of Redis's clock",
                result.id,
                LATEST_KEY,
                stored,
                REDIS_CLOCK_ALLOWANCE_S,
            )
        return outcome != 0

    async def restore_if_missing(self, result: SimulationResult) -> bool:
        return bool(await bounded(cast(Awaitable[bool | None], self.client.set(LATEST_KEY, result.to_json(), nx=True))))

    async def read_raw(self) -> bytes:
        """The stored value, cut at MAX_VALUE_BYTES + 1 bytes; ValueMissing if there is none."""
        value: bytes | list[Any] | None = await bounded(self._read(keys=[LATEST_KEY], args=[MAX_VALUE_BYTES]))
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
            return bool(await bounded(cast(Awaitable[bool], self.client.ping())))
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


# The per-socket keepalive knobs are Linux names; elsewhere the system defaults apply.
REDIS_KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (
        ("TCP_KEEPIDLE", REDIS_KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", REDIS_KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", REDIS_KEEPALIVE_PROBES),
    )
    if hasattr(socket, name)
}


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def make_client(url: str) -> aioredis.Redis:
    # Fail fast rather than hold a request for seconds: a run must succeed while Redis is down.
    # TCP keepalive: the kernel also notices a peer that vanished without a reset (the watcher
    # finds a dead subscription sooner, by pinging it; see watcher.py). Unix sockets have none.
    tcp: dict[str, Any] = (
        {} if url.startswith("unix:") else {"socket_keepalive": True, "socket_keepalive_options": REDIS_KEEPALIVE}
    )
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=REDIS_CALL_TIMEOUT_S,
        # No retries inside redis-py: a failed call fails fast, and the watcher reconnects and
        # resynchronizes itself (a PubSub that redis-py silently reconnected would skip that).
        # The price: a command that races a server-side close (an idle timeout, CLIENT KILL, a
        # failover) fails instead of being retried; a run's write then goes to the Republisher.
        retry=Retry(NoBackoff(), 0),
        health_check_interval=15,
        **tcp,
    )


@asynccontextmanager
async def open_latest_store(url: str, url_for_logs: str) -> AsyncIterator[LatestStore]:
    """Connect, retrying for a few seconds: Redis started beside us may still be coming up."""
    client = make_client(url)
    try:
        deadline = asyncio.get_running_loop().time() + REDIS_STARTUP_WAIT_S
        while True:
            try:
                await bounded(cast(Awaitable[bool], client.ping()))
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
