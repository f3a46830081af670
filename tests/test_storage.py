"""SQLite storage: the health check's write probe, migrations, and what errors tell a client."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from aiohttp.test_utils import TestClient

from powersim.constants import DB_PROBE_INTERVAL_S
from powersim.keys import POWERSIM
from powersim.settings import Settings
from powersim.storage import MIGRATIONS, Storage, open_storage

from .test_rest import expect_error, rows

Client = TestClient[Any, Any]
UNAVAILABLE = {"status": "unavailable", "redis": "ok", "database": "down", "workers": 1}
OK = {"status": "ok", "redis": "ok", "database": "ok", "workers": 1}


async def health(client: Client) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/healthz")
    return resp.status, await resp.json()


async def health_becomes(client: Client, expected: tuple[int, dict[str, Any]]) -> None:
    """The probe runs at most once per DB_PROBE_INTERVAL_S: a change shows within about that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DB_PROBE_INTERVAL_S + 2
    answer = await health(client)
    while answer != expected and loop.time() < deadline:
        await asyncio.sleep(0.05)
        answer = await health(client)
    assert answer == expected


def app_connection(client: Client) -> aiosqlite.Connection:
    """The app's own connection: max_page_count and query_only are settings of one connection."""
    return client.app[POWERSIM].storage._conn  # type: ignore[no-any-return]


async def test_health_is_503_while_another_writer_holds_the_database(client: Client, settings: Settings) -> None:
    assert await health(client) == (200, OK)
    with closing(sqlite3.connect(settings.database_path, timeout=0.1)) as locker:
        locker.execute("BEGIN EXCLUSIVE")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await health_becomes(client, (503, UNAVAILABLE))
        assert loop.time() - started < DB_PROBE_INTERVAL_S + 2, "the probe waited as long as a run would"
        locker.rollback()
    await health_becomes(client, (200, OK))  # recovered


async def test_health_is_503_while_the_database_is_read_only(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    # query_only makes SQLite refuse every write with SQLITE_READONLY, the error a read-only file
    # or file system gives; as root, chmod cannot make the file read-only for this test.
    await app_connection(client).execute("PRAGMA query_only = ON")
    await health_becomes(client, (503, UNAVAILABLE))
    await expect_error(await client.post("/run-simulation"), 503, "database error, the run was not stored")
    assert await health(client) == (503, UNAVAILABLE)
    assert "attempt to write a readonly database" in caplog.text  # the detail is logged...
    assert len([r for r in caplog.records if r.message.startswith("database check failed")]) == 1  # ...once
    await app_connection(client).execute("PRAGMA query_only = OFF")
    await health_becomes(client, (200, OK))
    assert (await client.post("/run-simulation")).status == 200


async def test_health_is_503_once_the_database_is_full(client: Client, settings: Settings) -> None:
    assert await health(client) == (200, OK)  # the probe has written once: its page is free now
    conn = app_connection(client)
    await conn.execute("PRAGMA max_page_count = 1")  # SQLite raises it to the current page count
    stored = 0
    for _ in range(1000):  # fill the last pages with runs until one does not fit
        resp = await client.post("/run-simulation")
        if resp.status != 200:
            await expect_error(resp, 503, "database error, the run was not stored")
            break
        stored += 1
    else:
        pytest.fail("the database never filled up")
    assert stored > 0
    await health_becomes(client, (503, UNAVAILABLE))
    assert len(rows(settings)) == stored
    await conn.execute("PRAGMA max_page_count = 1073741823")
    await health_becomes(client, (200, OK))
    assert (await client.post("/run-simulation")).status == 200


async def test_a_flood_of_health_checks_costs_one_probe_a_second(client: Client) -> None:
    conn = app_connection(client)
    await health(client)
    await asyncio.sleep(DB_PROBE_INTERVAL_S)  # the next check probes again: measure one probe
    before = conn.total_changes
    await health(client)
    one_probe = conn.total_changes - before
    assert one_probe > 0
    before = conn.total_changes
    answers = await asyncio.gather(*(health(client) for _ in range(100)))
    assert answers == [(200, OK)] * 100
    assert conn.total_changes - before <= 2 * one_probe  # one probe, two if the interval ended


async def test_a_failed_read_is_503_without_sqlite_text(
    client: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with closing(sqlite3.connect(settings.database_path)) as conn:
        conn.execute("ALTER TABLE simulations RENAME TO moved")
        conn.commit()
    caplog.set_level(logging.ERROR)
    resp = await client.get("/simulations")
    assert (resp.status, await resp.json()) == (503, {"error": "database error"})
    assert "no such table: simulations" in caplog.text


async def test_health_check_on_a_database_opened_read_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "powersim.db"
    async with open_storage(path) as storage:
        assert await storage.check()
    async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None) as conn:
        assert not await Storage(conn).check()


async def test_migrations_upgrade_a_version_1_database_and_keep_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "data" / "powersim.db"
    path.parent.mkdir()
    with closing(sqlite3.connect(path)) as conn:  # a database as the first release left it
        conn.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
        conn.execute(
            "INSERT INTO simulations (launched_at, finished_at, active_power, reactive_power)"
            " VALUES ('2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:01.000000Z', 0.1, 0.05)"
        )
        conn.commit()
    async with open_storage(path) as storage:
        assert await storage.check()
        assert [r.id for r in await storage.page(10, None)] == [1]
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        assert conn.execute("SELECT id, payload FROM health_probe").fetchall() == [(1, None)]
