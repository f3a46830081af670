"""The compare-and-set that writes `powersim:latest`, against a real Redis: which stored values
hold a run back, and proof that each of them is a value the watcher accepts."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from powersim.constants import LATEST_KEY, REDIS_CLOCK_ALLOWANCE_S
from powersim.latest import LAUNCH_CHECK, LatestStore, open_latest_store
from powersim.models import InvalidResult, SimulationResult, format_time, parse_result

from .redis_server import RedisServer
from .test_live import next_json

Client = TestClient[Any, Any]


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[LatestStore]:
    async with open_latest_store(redis_url, redis_url) as store:
        yield store


async def redis_now(client: aioredis.Redis) -> datetime:
    seconds, micros = await client.time()
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)


def run(run_id: int, launched_at: datetime) -> SimulationResult:
    return SimulationResult(run_id, 0.1 * run_id, 0.05, launched_at)


async def stored(client: aioredis.Redis) -> Any:
    return json.loads(await client.get(LATEST_KEY))


async def test_of_two_launches_at_the_same_instant_the_first_stays(
    store: LatestStore, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="powersim.latest")
    now = await redis_now(redis_client)
    first, second = run(1, now), run(2, now)
    assert await store.publish(first)
    assert not await store.publish(second)
    assert await stored(redis_client) == first.to_dict()
    skipped = [r for r in caplog.records if "not written" in r.getMessage()]
    assert len(skipped) == 1
    assert skipped[0].levelno == logging.DEBUG
    assert skipped[0].getMessage().count(format_time(now)) == 2  # ours and the stored launch


async def test_an_older_launch_never_replaces_a_newer_one(store: LatestStore, redis_client: aioredis.Redis) -> None:
    now = await redis_now(redis_client)
    newer, older = run(2, now), run(1, now - timedelta(microseconds=1))
    assert await store.publish(newer)
    assert not await store.publish(older)
    assert await stored(redis_client) == newer.to_dict()
    newest = run(3, now + timedelta(microseconds=1))
    assert await store.publish(newest)
    assert await stored(redis_client) == newest.to_dict()


async def test_a_launch_slightly_ahead_of_redis_clock_holds_runs_back(
    store: LatestStore, redis_client: aioredis.Redis
) -> None:
    now = await redis_now(redis_client)
    ahead = run(7, now + timedelta(seconds=REDIS_CLOCK_ALLOWANCE_S - 2))  # another machine's clock, a bit fast
    await redis_client.set(LATEST_KEY, ahead.to_json())
    assert not await store.publish(run(8, now))
    assert await stored(redis_client) == ahead.to_dict()


@pytest.mark.parametrize("ahead_s", [REDIS_CLOCK_ALLOWANCE_S + 3, 86_400 * 365 * 7000])
async def test_a_launch_dated_beyond_the_allowance_is_replaced(
    store: LatestStore, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture, ahead_s: float
) -> None:
    caplog.set_level(logging.INFO, logger="powersim.latest")
    now = await redis_now(redis_client)
    dated = run(7, min(now + timedelta(seconds=ahead_s), datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)))
    await redis_client.set(LATEST_KEY, dated.to_json())
    ours = run(8, now)
    assert await store.publish(ours)
    assert await stored(redis_client) == ours.to_dict()
    assert sum(format_time(dated.launched_at or now) in r.getMessage() for r in caplog.records) == 1


# Each is launched just ahead of Redis's clock ({t}, inside the allowance), so that only its
# shape can be why it is replaced: a launch in that form would hold the run back.
NOT_LAUNCHES = [
    pytest.param('{{"launched_at":"{t}"}}', id="no powers"),
    pytest.param('{{"id":1,"active_power":"1","reactive_power":2,"launched_at":"{t}"}}', id="string power"),
    pytest.param('{{"id":1,"active_power":NaN,"reactive_power":2,"launched_at":"{t}"}}', id="NaN"),
    pytest.param('{{"id":1,"active_power":0x10,"reactive_power":2,"launched_at":"{t}"}}', id="hex"),
    pytest.param('{{"id":1,"active_power":01,"reactive_power":2,"launched_at":"{t}"}}', id="leading zero"),
    pytest.param('{{"id":1,"active_power":1.,"reactive_power":2,"launched_at":"{t}"}}', id="bare point"),
    pytest.param('{{"id":1,"active_power":1e400,"reactive_power":2,"launched_at":"{t}"}}', id="overflow"),
    pytest.param('{{"id":0,"active_power":1,"reactive_power":2,"launched_at":"{t}"}}', id="id 0"),
    pytest.param('{{"id":1.0,"active_power":1,"reactive_power":2,"launched_at":"{t}"}}', id="float id"),
    pytest.param('{{"id":1,"active_power":1,"reactive_power":2,"launched_at":"{t}","x":1}}', id="extra key"),
    pytest.param('{{"id":1, "active_power":1,"reactive_power":2,"launched_at":"{t}"}}', id="a space"),
    pytest.param('{{"id":1,"active_power":1,"reactive_power":2,"launched_at":"{t}"}}' + " " * 5000, id="huge"),
    pytest.param('{{"id":1,"active_power":1,"reactive_power":2,"launched_at":"{bad_date}"}}', id="Feb 30"),
]


@pytest.mark.parametrize("value", NOT_LAUNCHES)
async def test_values_that_are_not_launches_never_hold_a_run_back(
    store: LatestStore, redis_client: aioredis.Redis, value: str
) -> None:
    now = await redis_now(redis_client)
    ahead = format_time(now + timedelta(seconds=2))
    await redis_client.set(LATEST_KEY, value.format(t=ahead, bad_date=ahead[:5] + "02-30" + ahead[10:]))
    ours = run(1, now)
    assert await store.publish(ours)
    assert await stored(redis_client) == ours.to_dict()


@pytest.mark.parametrize(
    "value",
    [
        '{{"active_power":9,"reactive_power":9,"launched_at":"9999-12-31T23:59:59.999999Z"}}',
        '{{"id":null,"active_power":9,"reactive_power":9,"launched_at":"9999-12-31T23:59:59.999999Z"}}',
        '{{"launched_at":"{t}"}}',  # no powers, launched just ahead of Redis's clock
    ],
)
async def test_after_a_dated_value_runs_are_written_pushed_and_served(
    client: Client, redis_client: aioredis.Redis, value: str
) -> None:
    ahead = format_time(await redis_now(redis_client) + timedelta(seconds=2))
    await redis_client.set(LATEST_KEY, value.format(t=ahead))
    async with client.ws_connect("/simulator-subscribe") as ws:
        await next_json(ws)
        result = await (await client.post("/run-simulation")).json()
        assert await next_json(ws) == result
    assert await stored(redis_client) == result
    assert (await (await client.get("/active-power")).json())["id"] == result["id"]


# --- one definition of valid: every value the script honours, the watcher accepts ----------

IDS = st.one_of(
    st.just("null"),
    st.integers(-3, 10**30).map(str),
    st.sampled_from(["01", "1.0", "1e3", "true", '"1"', "0", "-0", ""]),
)
NUMBERS = st.one_of(
    st.floats().map(json.dumps),  # NaN and Infinity included
    st.integers(-(10**400), 10**400).map(str),
    st.from_regex(r"\A-?[0-9]{1,4}(\.[0-9]{0,3})?([eE][+-]?[0-9]{0,4})?\Z"),
    st.sampled_from(["0x10", "1.", ".5", "+1", "1e", "--1", "1e400", "-1e400", "00", "-0", "1e-400", " 1", "1 "]),
)
TIMES = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(format_time),
    st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z"),
    st.text(max_size=30),
)
NEAR_LAUNCHES = st.builds(
    lambda i, p, q, t: f'{{"id":{i},"active_power":{p},"reactive_power":{q},"launched_at":"{t}"}}',
    IDS,
    NUMBERS,
    NUMBERS,
    TIMES,
)
OUR_RESULTS = st.builds(
    SimulationResult,
    st.one_of(st.none(), st.integers(1, 2**63 - 1)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.just(UTC)),
)


@given(raw=st.one_of(NEAR_LAUNCHES, st.text(max_size=120), st.binary(max_size=120)))
@example(raw='{"id":1,"active_power":1,"reactive_power":2,"launched_at":"2026-13-01T00:00:00.000000Z"}')
@example(raw='{"id":1,"active_power":1,"reactive_power":2,"launched_at":"2026-11-24T24:00:00.000000Z"}')
@example(raw='{"id":1,"active_power":1,"reactive_power":2,"launched_at":"2024-02-29T23:59:59.999999Z"}')
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_value_the_script_honours_is_one_the_watcher_accepts(redis_server: RedisServer, raw: str | bytes) -> None:
    client = redis_server.client()
    try:
        launch = client.eval(LAUNCH_CHECK, 0, raw)
    finally:
        client.close()
    if launch is None:
        return  # replaced by any run: nothing to prove
    try:
        result = parse_result(raw)
    except InvalidResult as exc:
        pytest.fail(f"the script honours {raw!r}, the watcher rejects it: {exc}")
    assert result.launched_at is not None
    assert format_time(result.launched_at) == launch.decode()


@given(result=OUR_RESULTS)
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_result_powersim_writes_is_honoured_as_a_launch(
    redis_server: RedisServer, result: SimulationResult
) -> None:
    client = redis_server.client()
    try:
        launch = client.eval(LAUNCH_CHECK, 0, result.to_json())
    finally:
        client.close()
    assert result.launched_at is not None
    assert launch == format_time(result.launched_at).encode()
