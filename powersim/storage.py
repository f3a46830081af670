"""Run history in SQLite through aiosqlite: schema migrations and typed queries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import aiosqlite

from .errors import StartupError, Unavailable
from .models import SimulationResult, format_time, parse_time

log = logging.getLogger(__name__)

# Each entry migrates the schema from version i to i + 1; PRAGMA user_version holds the version.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE simulations (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        launched_at    TEXT NOT NULL,  -- UTC, fixed-width ISO 8601, so text order is time order
        finished_at    TEXT NOT NULL,
        active_power   REAL NOT NULL,  -- MW
        reactive_power REAL NOT NULL   -- MVAr
    );
    CREATE INDEX simulations_launched_at ON simulations (launched_at);
    """,
)

_COLUMNS = "id, active_power, reactive_power, launched_at"


class Storage:
    """The app's one SQLite connection; aiosqlite serializes its calls on one thread."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def insert_run(
        self, launched_at: datetime, finished_at: datetime, active_power: float, reactive_power: float
    ) -> int:
        """Store one run and commit it; the id is only returned once the row is durable."""
        try:
            cursor = await self._conn.execute(
                "INSERT INTO simulations (launched_at, finished_at, active_power, reactive_power) VALUES (?, ?, ?, ?)",
                (format_time(launched_at), format_time(finished_at), active_power, reactive_power),
            )
            await self._conn.commit()
        except aiosqlite.Error as exc:
            await self._rollback()
            raise Unavailable(f"database error, the run was not stored: {exc}") from exc
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def get(self, run_id: int) -> SimulationResult | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM simulations WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    async def page(self, limit: int, before: int | None) -> list[SimulationResult]:
        """Newest first by id; `before` is exclusive, for keyset pagination."""
        if before is None:
            return await self._fetch(f"SELECT {_COLUMNS} FROM simulations ORDER BY id DESC LIMIT ?", (limit,))
        return await self._fetch(
            f"SELECT {_COLUMNS} FROM simulations WHERE id < ? ORDER BY id DESC LIMIT ?", (before, limit)
        )

    async def newest_launched(self) -> SimulationResult | None:
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM simulations ORDER BY launched_at DESC, id DESC LIMIT 1", ())
        return rows[0] if rows else None

    async def check(self) -> bool:
        try:
            await self._fetch_raw("SELECT 1", ())
        except Unavailable:
            return False
        return True

    async def _fetch(self, sql: str, params: tuple[object, ...]) -> list[SimulationResult]:
        return [
            SimulationResult(id=row[0], active_power=row[1], reactive_power=row[2], launched_at=parse_time(row[3]))
            for row in await self._fetch_raw(sql, params)
        ]

    async def _fetch_raw(self, sql: str, params: tuple[object, ...]) -> list[aiosqlite.Row]:
        try:
            async with self._conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except aiosqlite.Error as exc:
            raise Unavailable(f"database error: {exc}") from exc

    async def _rollback(self) -> None:
        try:
            await self._conn.rollback()
        except aiosqlite.Error:
            log.exception("rollback failed")


@asynccontextmanager
async def open_storage(path: Path) -> AsyncIterator[Storage]:
    """Open (creating with owner-only permissions) and migrate the database."""
    try:
        await asyncio.to_thread(_create_private, path)
        conn = await aiosqlite.connect(path)
    except (OSError, aiosqlite.Error) as exc:
        raise StartupError(f"cannot open database {path}: {exc}") from exc
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        await migrate(conn)
        yield Storage(conn)
    finally:
        await conn.close()


def _create_private(path: Path) -> None:
    """The history is nobody else's business: owner-only directory and file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)


async def migrate(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = row[0] if row else 0
    if version > len(MIGRATIONS):
        raise StartupError(f"database schema version {version} is newer than this powersim knows ({len(MIGRATIONS)})")
    for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits first; the script and its version bump then commit together.
        await conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {target}; COMMIT;")
        log.info("database schema migrated to version %d", target)
