"""REST API against a real app, real Redis and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from powersim.constants import LATEST_KEY, REDIS_CLOCK_ALLOWANCE_S
from powersim.keys import POWERSIM
from powersim.models import SimulationResult
from powersim.settings import Settings

from .conftest import ClientFactory
from .waiting import eventually

Client = TestClient[Any, Any]


def rows(settings: Settings) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(settings.database_path)) as conn:  # `with conn` alone never closes it
        return conn.execute(
            "SELECT id, launched_at, finished_at, active_power, reactive_power FROM simulations ORDER BY id"
        ).fetchall()


def runs_in_flight(client: Client) -> int:
    return len(client.app[POWERSIM]._runs)


# Simulations for the tests below (POWERSIM_SIMULATION=tests.test_rest:...); the marker file's
# path comes from POWERSIM_TEST_MARKER, which the workers inherit.


def slow_and_marked() -> tuple[float, float]:
    """tests.sims:slow that first creates the marker: the test knows the run is in its worker."""
    Path(os.environ["POWERSIM_TEST_MARKER"]).touch()
    time.sleep(1.5)
    return 0.2, 0.1


def pid_or_dies() -> tuple[float, float]:
    """Its worker's pid as the active power; dies instead (once) while the marker file exists."""
    marker = Path(os.environ["POWERSIM_TEST_MARKER"])
    if marker.exists():
        marker.unlink()
        os._exit(3)
    return float(os.getpid()), 0.0


async def post_run(client: Client) -> dict[str, Any]:
    resp = await client.post("/run-simulation")
    assert resp.status == 200, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def expect_error(resp: Any, status: int, contains: str) -> None:
    assert resp.status == status
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"}
    assert contains in body["error"], body


async def test_health_ok(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "redis": "ok", "database": "ok", "workers": 1}


async def test_no_result_yet(client: Client) -> None:
    for path in ("/active-power", "/reactive-power"):
        await expect_error(await client.get(path), 404, "no simulation has run yet")
    resp = await client.get("/simulations")
    assert await resp.json() == {"simulations": [], "next_before": None}


async def test_run_is_stored_published_and_served(
    client: Client, settings: Settings, redis_client: aioredis.Redis
) -> None:
    result = await post_run(client)
    # tests.sims:fixed takes no inputs: its runs converge and have none.
    assert result == {
        "id": 1,
        "active_power": 0.1,
        "reactive_power": 0.05,
        "launched_at": result["launched_at"],
        "status": "converged",
        "network": "seed",
        "inputs": None,
    }
    assert list(result) == ["id", "active_power", "reactive_power", "launched_at", "status", "network", "inputs"]
    assert result["launched_at"].endswith("Z")

    [(row_id, launched, finished, p, q)] = rows(settings)
    assert (row_id, launched, p, q) == (1, result["launched_at"], 0.1, 0.05)
    assert finished >= launched
    with closing(sqlite3.connect(settings.database_path)) as conn:
        outcome = conn.execute("SELECT status, inputs, message, details FROM simulations").fetchall()
    assert outcome == [("converged", None, None, None)]

    assert json.loads(await redis_client.get(LATEST_KEY)) == result
    active = await (await client.get("/active-power")).json()
    assert active == {"id": 1, "active_power": 0.1, "launched_at": result["launched_at"]}
    reactive = await (await client.get("/reactive-power")).json()
    assert reactive == {"id": 1, "reactive_power": 0.05, "launched_at": result["launched_at"]}
    # The stored run: the compact form, the solver's message and the details (a tuple has none).
    run = result | {"network_sha256": None, "message": None}
    assert await (await client.get("/simulations/1")).json() == run | {"details": None}
    history = await (await client.get("/simulations")).json()
    assert history == {"simulations": [run], "next_before": None}


async def test_history_pages_newest_first(client: Client) -> None:
    ids = [(await post_run(client))["id"] for _ in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    pages, before = [], None
    while True:
        query = {"limit": "2"} | ({"before": str(before)} if before else {})
        body = await (await client.get("/simulations", params=query)).json()
        pages.append([r["id"] for r in body["simulations"]])
        before = body["next_before"]
        if before is None:
            break
    assert pages == [[5, 4], [3, 2], [1]]
    body = await (await client.get("/simulations", params={"limit": "5"})).json()
    assert [r["id"] for r in body["simulations"]] == [5, 4, 3, 2, 1]
    assert body["next_before"] is None


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/simulations?limit=0", 400, "limit must be between 1 and 500"),
        ("/simulations?limit=501", 400, "limit must be between 1 and 500"),
        ("/simulations?limit=-3", 400, "limit must be between"),
        ("/simulations?limit=ten", 400, "limit must be an integer"),
        ("/simulations?before=x", 400, "before must be an integer"),
        ("/simulations?before=0", 400, "before must be between"),
        ("/simulations/abc", 400, "id must be an integer"),
        ("/simulations/0", 400, "id must be between"),
        ("/simulations/99999999999999999999999", 400, "id must be between"),
        ("/simulations/1_0", 400, "id must be an integer, got '1_0'"),
        ("/simulations/+5", 400, "id must be an integer"),
        ("/simulations/%201", 400, "id must be an integer"),
        ("/simulations/%D9%A3", 400, "id must be an integer"),  # an Arabic-Indic 3
        ("/simulations/" + "1" * 41, 400, "id must be an integer"),
        ("/simulations?limit=1_0", 400, "limit must be an integer"),
        ("/simulations/7", 404, "no simulation with id 7"),
        ("/nowhere", 404, "no such endpoint: GET /nowhere"),
        ("/simulator-subscribe", 426, "websocket"),
    ],
)
async def test_bad_requests_get_json_errors(client: Client, path: str, status: int, message: str) -> None:
    await expect_error(await client.get(path), status, message)


async def test_wrong_method_is_json_405(client: Client) -> None:
    resp = await client.get("/run-simulation")
    await expect_error(resp, 405, "method GET is not allowed on /run-simulation; use POST")
    assert resp.headers["Allow"] == "POST"
    await expect_error(await client.delete("/active-power"), 405, "use GET")


async def test_concurrent_runs_keep_the_newest_launch(
    make_client: ClientFactory, settings: Settings, redis_client: aioredis.Redis
) -> None:
    client = await make_client(workers=2, simulation="tests.sims:jitter")
    results = await asyncio.gather(*(post_run(client) for _ in range(20)))
    assert sorted(r["id"] for r in results) == list(range(1, 21))
    assert len(rows(settings)) == 20
    newest = max(results, key=lambda r: r["launched_at"])
    assert json.loads(await redis_client.get(LATEST_KEY)) == newest
    active = await (await client.get("/active-power")).json()
    assert (active["id"], active["launched_at"]) == (newest["id"], newest["launched_at"])


async def test_a_newer_value_in_redis_is_never_replaced(client: Client, redis_client: aioredis.Redis) -> None:
    # Launched after this run, within the clock allowance (a far-future launch is a dated value),
    # and written as powersim writes it.
    launched = datetime.now(UTC) + timedelta(seconds=REDIS_CLOCK_ALLOWANCE_S / 2)
    inputs = {"load_p_mw": 0.2, "load_q_mvar": 0.05, "ext_grid_vm_pu": 1.02, "line_length_km": 0.1}
    future = SimulationResult(77, 1.0, 2.0, launched, "converged", inputs)
    await redis_client.set(LATEST_KEY, future.to_json())
    await post_run(client)
    assert await redis_client.get(LATEST_KEY) == future.to_json().encode()
    assert (await (await client.get("/active-power")).json())["id"] == 77


@pytest.mark.parametrize(
    "stored",
    [
        b"not json",
        b'{"active_power": 0.3, "reactive_power": 0.1}',  # no launched_at
        b'{"active_power": 0.3, "reactive_power": 0.1, "launched_at": "yesterday"}',
        b'{"active_power": 0.3, "reactive_power": 0.1, "launched_at": "2999-01-01T00:00:00Z"}',  # not our format
    ],
)
async def test_values_without_a_comparable_launch_are_replaced(
    client: Client, redis_client: aioredis.Redis, stored: bytes
) -> None:
    await redis_client.set(LATEST_KEY, stored)
    result = await post_run(client)
    assert json.loads(await redis_client.get(LATEST_KEY)) == result


async def test_key_restored_from_sqlite_after_flushall(
    make_client: ClientFactory, redis_client: aioredis.Redis
) -> None:
    first = await make_client()
    await post_run(first)
    newest = await post_run(first)
    await first.close()
    await redis_client.flushall()

    second = await make_client()
    assert json.loads(await redis_client.get(LATEST_KEY)) == newest
    assert (await (await second.get("/active-power")).json())["id"] == newest["id"]
    assert (await post_run(second))["id"] == 3  # the history carried on


async def test_keyspace_notifications_enabled_keeping_existing_flags(
    redis_server: Any, redis_client: aioredis.Redis, make_client: ClientFactory
) -> None:
    await redis_client.config_set("notify-keyspace-events", "El")
    await make_client()
    flags = (await redis_client.config_get("notify-keyspace-events"))["notify-keyspace-events"]
    assert set(flags) >= set("ElK$gx"), flags


@pytest.mark.parametrize(
    ("simulation", "message"),
    [
        ("tests.sims:fails", "RuntimeError: power flow did not converge after 10 iterations"),
        ("tests.sims:not_a_pair", "simulation returned 'oops'"),
        ("tests.sims:not_finite", "non-finite"),
    ],
)
async def test_failed_simulation_is_500_and_stores_nothing(
    make_client: ClientFactory,
    settings: Settings,
    redis_client: aioredis.Redis,
    simulation: str,
    message: str,
) -> None:
    before = b'{"active_power": 0.3, "reactive_power": 0.1}'
    await redis_client.set(LATEST_KEY, before)
    client = await make_client(simulation=simulation)
    await expect_error(await client.post("/run-simulation"), 500, message)
    assert rows(settings) == []
    assert await redis_client.get(LATEST_KEY) == before
    assert (await (await client.get("/active-power")).json())["active_power"] == 0.3


async def test_a_dead_worker_is_500_and_the_next_run_gets_a_new_worker(
    make_client: ClientFactory, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "die"
    monkeypatch.setenv("POWERSIM_TEST_MARKER", str(marker))
    client = await make_client(simulation="tests.test_rest:pid_or_dies")
    first = await post_run(client)
    marker.touch()
    resp = await client.post("/run-simulation")
    assert resp.status == 500
    body = await resp.json()
    assert body["error"] == ("the run failed: the worker process running this simulation died; it is being replaced")
    failed = body["simulation"]
    assert (failed["status"], failed["active_power"], failed["network"]) == ("failed", None, "seed")
    assert not marker.exists()  # it was that worker that died
    later = await post_run(client)
    assert later["active_power"] != first["active_power"], "the run went to the same worker process"
    # The failed run is in the history, with its reason; the latest result is still the first run's.
    assert [r[0] for r in rows(settings)] == [first["id"], failed["id"], later["id"]]
    stored = await (await client.get(f"/simulations/{failed['id']}")).json()
    assert (stored["status"], stored["message"]) == ("failed", failed["message"])
    await eventually(lambda: client.app[POWERSIM].pool.ready == 1, 10, "the new pool never reported itself warm")
    assert (await client.get("/healthz")).status == 200


async def test_loop_serves_reads_while_a_slow_run_is_in_a_worker(
    make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "started"
    monkeypatch.setenv("POWERSIM_TEST_MARKER", str(marker))
    client = await make_client(simulation="tests.test_rest:slow_and_marked")
    run = asyncio.create_task(client.post("/run-simulation"))
    await eventually(marker.exists, 10, "the run never reached its worker")  # it sleeps there for 1.5 s
    for _ in range(20):
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/active-power")).status == 404
    assert not run.done(), "reads had to wait for the simulation"
    resp = await run
    assert (await resp.json())["active_power"] == 0.2


async def test_real_pandapower_simulation(make_client: ClientFactory) -> None:
    """The (P, Q) form of the user's module: runs take the inputs, and have no details."""
    client = await make_client(simulation="test_sim:run_simulation")
    result = await post_run(client)
    assert result["active_power"] == pytest.approx(0.1, abs=1e-9)
    assert result["reactive_power"] == pytest.approx(0.05, abs=1e-9)
    seed = {"load_p_mw": 0.1, "load_q_mvar": 0.05, "ext_grid_vm_pu": 1.02, "line_length_km": 0.1}
    assert (result["status"], result["inputs"]) == ("converged", seed)
    assert (await (await client.get(f"/simulations/{result['id']}")).json())["details"] is None
