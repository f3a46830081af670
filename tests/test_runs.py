"""Runs under faults: simulations that raise BaseException, concurrent runs whose commits fail."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from powersim.constants import LATEST_KEY
from powersim.errors import Unavailable
from powersim.pool import open_pool
from powersim.settings import Settings

from .conftest import ClientFactory
from .processes import post, server_env, start_server, wait_healthy
from .test_rest import expect_error, rows

Client = TestClient[Any, Any]


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise SystemExit(4)


def exits_while_described() -> tuple[float, float]:
    """Simulation whose error raises SystemExit when the worker formats it."""
    raise _Unprintable


# --- BaseException from a simulation (item 12) -----------------------------------------------


async def test_a_simulation_raising_system_exit_is_a_failed_run_and_the_next_run_works(
    make_client: ClientFactory,
    settings: Settings,
    redis_client: aioredis.Redis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POWERSIM_TEST_MARKER", str(tmp_path / "exited"))  # inherited by the workers
    before = b'{"active_power": 0.3, "reactive_power": 0.1}'
    await redis_client.set(LATEST_KEY, before)
    client = await make_client(simulation="tests.sims:exits_once")
    await expect_error(await client.post("/run-simulation"), 500, "simulation failed: SystemExit: 3")
    assert rows(settings) == []
    assert await redis_client.get(LATEST_KEY) == before
    later = await client.post("/run-simulation")
    assert later.status == 200, await later.text()
    assert (await later.json())["id"] == 1
    assert [r[0] for r in rows(settings)] == [1]
    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok", "redis": "ok", "database": "ok", "workers": 1}


@pytest.mark.parametrize(
    ("simulation", "message"),
    [
        ("tests.sims:exits", "simulation failed: SystemExit: 3"),
        ("tests.sims:interrupted", "simulation failed: KeyboardInterrupt"),
        # Its message raises SystemExit when the worker formats it: reported by its type alone.
        ("tests.test_runs:exits_while_described", "simulation failed: _Unprintable"),
    ],
)
async def test_base_exceptions_from_a_simulation_are_500_every_time(
    make_client: ClientFactory, settings: Settings, simulation: str, message: str
) -> None:
    client = await make_client(simulation=simulation)
    for _ in range(2):
        await expect_error(await client.post("/run-simulation"), 500, message)
    assert rows(settings) == []
    assert (await client.get("/healthz")).status == 200


@pytest.mark.slow
def test_a_server_process_survives_a_simulation_raising_system_exit(tmp_path: Path, redis_url: str) -> None:
    env = server_env(
        tmp_path,
        redis_url,
        POWERSIM_SIMULATION="tests.sims:exits_once",
        POWERSIM_TEST_MARKER=str(tmp_path / "exited"),
    )
    proc = start_server(env)
    try:
        wait_healthy(proc, env["PORT"])
        status, body = post(env["PORT"], "/run-simulation")
        assert (status, json.loads(body)) == (500, {"error": "simulation failed: SystemExit: 3"})
        status, body = post(env["PORT"], "/run-simulation")
        assert status == 200, body
        assert json.loads(body)["id"] == 1
        assert proc.poll() is None
        assert wait_healthy(proc, env["PORT"])["status"] == "ok"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


# --- one transaction per write (item 13) ------------------------------------------------------

# A real trigger, added by another connection: about half of all inserts fail inside SQLite, and
# each insert is slow (hex of 2 MB: a few ms), so that other runs' inserts queue up behind it on
# the app's one connection, between its INSERT and its COMMIT.
FLAKY_INSERTS = """
CREATE TRIGGER flaky_insert BEFORE INSERT ON simulations
BEGIN
    SELECT length(hex(randomblob(2000000)));
    SELECT RAISE(ABORT, 'flaky insert') WHERE abs(random()) % 2 = 0;
END
"""


async def test_a_failed_insert_never_undoes_another_runs_answered_row(
    make_client: ClientFactory, settings: Settings, redis_client: aioredis.Redis
) -> None:
    client = await make_client(workers=2, simulation="tests.sims:jitter")
    with closing(sqlite3.connect(settings.database_path)) as conn:
        conn.execute(FLAKY_INSERTS)
        conn.commit()
    responses = await asyncio.gather(*(client.post("/run-simulation") for _ in range(30)))
    answered = []
    for resp in responses:
        body = await resp.json()
        if resp.status == 200:
            answered.append(body["id"])
        else:
            assert (resp.status, body) == (503, {"error": "database error, the run was not stored"})
    assert 0 < len(answered) < len(responses)  # the trigger did fail some, and let others through
    assert len(set(answered)) == len(answered), "the same id was answered twice"
    assert sorted(answered) == [r[0] for r in rows(settings)], "answered ids and stored rows differ"
    latest = json.loads(await redis_client.get(LATEST_KEY))
    assert latest["id"] in answered


# --- what a client is told (item 14) ----------------------------------------------------------


async def test_a_stopped_pool_refuses_runs_with_a_fixed_message() -> None:
    async with open_pool("tests.sims:fixed", 1, "INFO") as pool:
        assert await pool.run() is not None
    with pytest.raises(Unavailable) as refused:
        await pool.run()
    assert str(refused.value) == "the worker pool is not accepting work; the server is stopping"
