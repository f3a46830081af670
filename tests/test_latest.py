"""The compare-and-set that writes `powersim:latest`, against a real Redis: which stored values
hold a run back, and proof that each of them is a value the watcher accepts."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from powersim.constants import LATEST_KEY, REDIS_CLOCK_ALLOWANCE_S
from powersim.latest import LAUNCH_CHECK, LatestStore, open_latest_store
from powersim.models import InvalidResult, SimulationResult, dumps, format_time, parse_result
from powersim.scenario import INPUT_NAMES

from .redis_server import RedisServer
from .test_live import next_json, write

Client = TestClient[Any, Any]


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[LatestStore]:
    async with open_latest_store(redis_url, redis_url) as store:
        yield store


async def redis_now(client: aioredis.Redis) -> datetime:
    seconds, micros = await client.time()
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)


SEED_INPUTS = {"load_p_mw": 0.1, "load_q_mvar": 0.05, "ext_grid_vm_pu": 1.02, "line_length_km": 0.1}


def run(run_id: int, launched_at: datetime, inputs: dict[str, float] | None = None) -> SimulationResult:
    """A converged run as powersim publishes it (a not-converged one is never published)."""
    return SimulationResult(run_id, 0.1 * run_id, 0.05, launched_at, "converged", inputs)


def old_form(run_id: int, launched_at: datetime) -> str:
    """A value as powersim wrote it before runs had a status and inputs, written out by hand."""
    return (
        f'{{"id":{run_id},"active_power":{0.1 * run_id},"reactive_power":0.05,'
        f'"launched_at":"{format_time(launched_at)}"}}'
    )


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


async def test_an_older_launch_with_inputs_never_replaces_a_newer_one(
    store: LatestStore, redis_client: aioredis.Redis
) -> None:
    now = await redis_now(redis_client)
    other = {"load_p_mw": -0.25, "load_q_mvar": 1e-05, "ext_grid_vm_pu": 1.0, "line_length_km": 100.0}
    newer, older = run(2, now, SEED_INPUTS), run(1, now - timedelta(microseconds=1), other)
    assert await store.publish(newer)
    assert not await store.publish(older)
    assert not await store.publish(run(3, now - timedelta(microseconds=1)))  # without inputs neither
    assert await redis_client.get(LATEST_KEY) == newer.to_json().encode()
    newest = run(4, now + timedelta(microseconds=1), other)
    assert await store.publish(newest)
    assert await stored(redis_client) == newest.to_dict()
    assert (await stored(redis_client))["inputs"] == other


# The forms powersim writes: a run with inputs, one of a simulation that takes none, and a value
# written before runs had a status and inputs (by an older powersim sharing this Redis).
OUR_FORMS = [
    pytest.param(lambda n, t: run(n, t, SEED_INPUTS).to_json(), id="with inputs"),
    pytest.param(lambda n, t: run(n, t).to_json(), id="inputs null"),
    pytest.param(old_form, id="old form"),
]


@pytest.mark.parametrize("form", OUR_FORMS)
async def test_a_launch_slightly_ahead_of_redis_clock_holds_runs_back(
    store: LatestStore, redis_client: aioredis.Redis, form: Callable[[int, datetime], str]
) -> None:
    now = await redis_now(redis_client)
    ahead = form(7, now + timedelta(seconds=REDIS_CLOCK_ALLOWANCE_S - 2))  # another machine's clock, a bit fast
    await redis_client.set(LATEST_KEY, ahead)
    assert not await store.publish(run(8, now, SEED_INPUTS))
    assert await redis_client.get(LATEST_KEY) == ahead.encode()


@pytest.mark.parametrize("form", OUR_FORMS)
@pytest.mark.parametrize("ahead_s", [REDIS_CLOCK_ALLOWANCE_S + 3, 86_400 * 365 * 7000])
async def test_a_launch_dated_beyond_the_allowance_is_replaced(
    store: LatestStore,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
    ahead_s: float,
    form: Callable[[int, datetime], str],
) -> None:
    caplog.set_level(logging.INFO, logger="powersim.latest")
    now = await redis_now(redis_client)
    dated = min(now + timedelta(seconds=ahead_s), datetime(9999, 12, 31, 23, 59, 59, 999999, UTC))
    await redis_client.set(LATEST_KEY, form(7, dated))
    ours = run(8, now, SEED_INPUTS)
    assert await store.publish(ours)
    assert await stored(redis_client) == ours.to_dict()
    assert sum(format_time(dated) in r.getMessage() for r in caplog.records) == 1


# Each is launched just ahead of Redis's clock ({t}, inside the allowance), so that only its
# shape can be why it is replaced: a launch in that form would hold the run back.
HEAD = '{{"id":1,"active_power":1,"reactive_power":2,"launched_at":"{t}"'
SEED_JSON = json.dumps(SEED_INPUTS, separators=(",", ":")).replace("{", "{{").replace("}", "}}")
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
    # A run that did not converge is never the latest: such a value is not a launch, whatever it holds.
    pytest.param(HEAD + ',"status":"not_converged","inputs":' + SEED_JSON + "}}", id="not converged"),
    pytest.param(
        '{{"id":1,"active_power":null,"reactive_power":null,"launched_at":"{t}","status":"not_converged",'
        '"inputs":' + SEED_JSON + ',"message":"Power Flow nr did not converge after 10 iterations!"}}',
        id="a stored not-converged run",
    ),
    pytest.param(HEAD + ',"status":null,"inputs":null}}', id="status null"),
    pytest.param(HEAD + ',"status":"CONVERGED","inputs":null}}', id="status upper case"),
    pytest.param(HEAD + ',"status":"converged"}}', id="no inputs"),
    pytest.param(HEAD + ',"inputs":null,"status":"converged"}}', id="keys swapped"),
    pytest.param(HEAD + ',"status":"converged","inputs":{{,}}}}', id="inputs {,}"),
    pytest.param(HEAD + ',"status":"converged","inputs":{{"a":1,}}}}', id="trailing comma"),
    pytest.param(HEAD + ',"status":"converged","inputs":{{"Load_P":1}}}}', id="upper-case name"),
    pytest.param(HEAD + ',"status":"converged","inputs":{{"a":NaN}}}}', id="NaN input"),
    pytest.param(HEAD + ',"status":"converged","inputs":{{"a":"1"}}}}', id="string input"),
    pytest.param(HEAD + ',"status":"converged","inputs":{{"a":true}}}}', id="bool input"),
    pytest.param(HEAD + ',"status":"converged","inputs":{{"' + "n" * 65 + '":1}}}}', id="65-char name"),
    pytest.param(HEAD + ',"status":"converged","inputs":[1]}}', id="inputs a list"),
    pytest.param(HEAD + ',"status":"converged","inputs":{{"a":1}}}}}}', id="one brace too many"),
]


@pytest.mark.parametrize("value", NOT_LAUNCHES)
async def test_values_that_are_not_launches_never_hold_a_run_back(
    store: LatestStore, redis_client: aioredis.Redis, value: str
) -> None:
    now = await redis_now(redis_client)
    ahead = format_time(now + timedelta(seconds=2))
    await redis_client.set(LATEST_KEY, value.format(t=ahead, bad_date=ahead[:5] + "02-30" + ahead[10:]))
    ours = run(1, now, SEED_INPUTS)
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
    await write(client, redis_client, value.format(t=ahead))  # read by the watcher before the snapshot
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
# What follows launched_at. Ours: nothing (the old form), or the status and the inputs (null, or
# an object of lower-case names up to 64 characters and finite JSON numbers).
OUR_NAMES = st.one_of(st.sampled_from(INPUT_NAMES), st.from_regex(r"\A[a-z_][a-z0-9_]{0,63}\Z"))
FINITE_NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),  # 1e-300, -0.0, 1e+16...
    st.integers(-(10**15), 10**15).map(str),
    st.from_regex(r"\A-?(0|[1-9][0-9]{0,3})(\.[0-9]{1,3})?([eE][+-]?[0-9]{1,2})?\Z"),
)
NAMES = st.one_of(
    OUR_NAMES,
    st.from_regex(r"\A[a-z_][a-z0-9_]{64,70}\Z"),  # too long
    st.sampled_from(["A", "Load_P", "1a", "", "a-b", "a b", "\u00e9", 'a\\"b', "a\\u0041", "a,b", "a}", "a:1"]),
    st.text(max_size=6),  # written raw, unescaped
)
INPUT_OBJECTS = st.one_of(
    st.lists(st.builds(lambda n, x: f'"{n}":{x}', NAMES, st.one_of(FINITE_NUMBERS, NUMBERS)), max_size=5).map(
        lambda entries: "{" + ",".join(entries) + "}"
    ),
    st.sampled_from(
        [
            *("null", "{}", "{,}", '{"a":1,}', '{,"a":1}', '{"a":1,,"b":2}', '{"a" :1}', '{"a": 1}', "{ }", "[]"),
            *('"x"', "true", "1", "NULL", '{"a":"1"}', '{"a":true}', '{"a":null}', '{"a":{"b":1}}', '{"a":[1]}'),
            *('{"a":1}}', '{{"a":1}', '{"A":1}', '{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":1}{"b":2}'),
        ]
    ),
)
STATUS_TEXTS = st.sampled_from(
    ['"converged"', '"not_converged"', "null", '"CONVERGED"', '"Converged"', '"converged "', "1", '""', "converged"]
)
LAYOUTS = st.sampled_from(
    [
        ',"status":{s},"inputs":{i}}}',
        ',"status":{s}}}',
        ',"inputs":{i}}}',
        ',"inputs":{i},"status":{s}}}',
        ',"status":{s},"inputs":{i},"x":1}}',
        ',"status":{s},"inputs":{i}',
        ',"status":{s},"inputs":{i}}}}}',
        ',"status":{s},"inputs":{i}}} ',
        ', "status":{s},"inputs":{i}}}',
        ',"status":{s},"inputs":{i},"status":"not_converged"}}',
        ',"status":{s},"network":"Case 9","inputs":{i}}}',
        ',"status":{s},"network":{s},"inputs":{i}}}',
        ',"network":"seed","status":{s},"inputs":{i}}}',
        ',"status":{s},"network":"' + "a" * 65 + '","inputs":{i}}}',
        ',"status":{s},"network":"a\\"b","inputs":{i}}}',
        ',"status":{s},"network":7,"inputs":{i}}}',
    ]
)


@st.composite
def tails(draw: st.DrawFn) -> tuple[str, bool]:
    """A text to follow launched_at, and whether the value is then in our own form (it must be
    honoured as a launch); False claims nothing either way."""
    kind = draw(st.sampled_from(["old", "null", "ours", "ours", "mangled", "mangled", "any"]))
    if kind == "old":
        return "}", True
    network = draw(st.sampled_from(["", ',"network":null', ',"network":"seed"', ',"network":"upload-7"']))
    if kind == "null":
        return ',"status":"converged"' + network + ',"inputs":null}', True
    if kind == "ours":
        entries = draw(st.lists(st.builds(lambda n, x: f'"{n}":{x}', OUR_NAMES, FINITE_NUMBERS), max_size=6))
        return ',"status":"converged"' + network + ',"inputs":{' + ",".join(entries) + "}}", True
    if kind == "mangled":
        return draw(LAYOUTS).format(s=draw(STATUS_TEXTS), i=draw(INPUT_OBJECTS)), False
    return draw(st.text(max_size=20)), False


NEAR_LAUNCHES = st.builds(
    lambda i, p, q, t, tail: f'{{"id":{i},"active_power":{p},"reactive_power":{q},"launched_at":"{t}"{tail[0]}',
    IDS,
    NUMBERS,
    NUMBERS,
    TIMES,
    st.one_of(st.just(("}", True)), tails()),
)
OUR_INPUTS = st.one_of(
    st.none(),
    st.builds(  # a run's resolved inputs: anything ScenarioInput accepts
        lambda p, q, vm, length: {"load_p_mw": p, "load_q_mvar": q, "ext_grid_vm_pu": vm, "line_length_km": length},
        st.floats(-1000, 1000),
        st.floats(-1000, 1000),
        st.floats(0.5, 1.5),
        st.floats(0, 100, exclude_min=True),
    ),
    st.dictionaries(  # a custom simulation's, numbers of every shape JSON gives a float
        OUR_NAMES,
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(10**18), 10**18).map(float),  # integral: 3.0, 1e+18
            st.floats(min_value=-1e-300, max_value=1e-300),  # tiny: exponents
        ),
        max_size=6,
    ),
)
OUR_RESULTS = st.builds(
    SimulationResult,
    st.one_of(st.none(), st.integers(1, 2**63 - 1)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.datetimes(timezones=st.just(UTC)),
    st.just("converged"),
    OUR_INPUTS,
    network=st.one_of(st.none(), st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,63}", fullmatch=True)),
)


def launch_check(redis_server: RedisServer, raw: str | bytes) -> bytes | None:
    """The script's verdict on a stored value: its launch time, or None (not a launch)."""
    client = redis_server.client()
    try:
        launch = cast(bytes | None, client.eval(LAUNCH_CHECK, 0, raw))  # a sync client: no Awaitable
    finally:
        client.close()
    return launch


def assert_the_watcher_accepts(raw: str | bytes, launch: bytes) -> None:
    try:
        result = parse_result(raw)
    except InvalidResult as exc:
        pytest.fail(f"the script honours {raw!r}, the watcher rejects it: {exc}")
    assert result.launched_at is not None
    assert format_time(result.launched_at) == launch.decode()


@given(raw=st.one_of(NEAR_LAUNCHES, st.text(max_size=120), st.binary(max_size=120)))
@example(raw='{"id":1,"active_power":1,"reactive_power":2,"launched_at":"2026-13-01T00:00:00.000000Z"}')
@example(raw='{"id":1,"active_power":1,"reactive_power":2,"launched_at":"2026-11-24T24:00:00.000000Z"}')
@example(raw='{"id":1,"active_power":1,"reactive_power":2,"launched_at":"2024-02-29T23:59:59.999999Z"}')
@example(raw='{"id":1,"active_power":1,"reactive_power":2,"launched_at":"2024-02-29T23:59:59.999999Z","inputs":{}}')
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_value_the_script_honours_is_one_the_watcher_accepts(redis_server: RedisServer, raw: str | bytes) -> None:
    launch = launch_check(redis_server, raw)
    if launch is not None:  # otherwise it is replaced by any run: nothing to prove
        assert_the_watcher_accepts(raw, launch)


A_RUN = SimulationResult(1, 0.1, 0.05, datetime(2026, 11, 24, tzinfo=UTC), "converged")
IN = ',"status":"converged","inputs":'


@given(result=OUR_RESULTS, tail=tails())
@example(result=A_RUN, tail=(IN + "{,}}", False))
@example(result=A_RUN, tail=(IN + '{"a":1,}}', False))
@example(result=A_RUN, tail=(IN + '{"A":1}}', False))
@example(result=A_RUN, tail=(IN + '{"a":NaN}}', False))
@example(result=A_RUN, tail=(IN + '{"a":1e400}}', False))
@example(result=A_RUN, tail=(IN + '{"' + "n" * 64 + '":1e-400,"_9":-0}}', True))
@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_tail_the_script_honours_is_one_the_watcher_accepts(
    redis_server: RedisServer, result: SimulationResult, tail: tuple[str, bool]
) -> None:
    """Valid heads, then what follows launched_at: ours is honoured, the rest as the watcher reads it."""
    text = result.to_json()
    raw = text[: text.index(',"status":')] + tail[0]
    launch = launch_check(redis_server, raw)
    assert result.launched_at is not None
    if tail[1]:
        assert launch == format_time(result.launched_at).encode(), raw
    if launch is not None:
        assert_the_watcher_accepts(raw, launch)


@given(result=OUR_RESULTS)
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_result_powersim_writes_is_honoured_as_a_launch(
    redis_server: RedisServer, result: SimulationResult
) -> None:
    """Today's form, and the forms older powersims wrote: without the network, and without
    status, network and inputs."""
    assert result.launched_at is not None
    launched = format_time(result.launched_at).encode()
    assert launch_check(redis_server, result.to_json()) == launched
    before_networks = {key: value for key, value in result.to_dict().items() if key != "network"}
    assert launch_check(redis_server, dumps(before_networks)) == launched
    old = {key: value for key, value in result.to_dict().items() if key not in ("status", "network", "inputs")}
    assert launch_check(redis_server, dumps(old)) == launched


def test_the_old_form_written_by_hand_is_honoured(redis_server: RedisServer) -> None:
    moment = datetime(2026, 11, 24, 10, 0, 0, 250000, UTC)
    assert old_form(3, moment) == '{"id":3,"active_power":0.30000000000000004,"reactive_power":0.05,' + (
        '"launched_at":"2026-11-24T10:00:00.250000Z"}'
    )
    assert launch_check(redis_server, old_form(3, moment)) == b"2026-11-24T10:00:00.250000Z"
    assert launch_check(redis_server, old_form(3, moment)[:-1] + ',"status":"converged"}') is None
