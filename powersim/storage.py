"""Run history in SQLite through aiosqlite: schema migrations and typed queries."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import aiosqlite

from .constants import DB_BUSY_TIMEOUT_MS, DB_PROBE_BUSY_TIMEOUT_MS, DB_PROBE_INTERVAL_S, DB_PROBE_PAGES
from .errors import StartupError, Unavailable
from .models import SimulationResult, Status, dumps, format_time, parse_time
from .networks import NetworkEntry, NewUpload, parse_upload_id, upload_id

log = logging.getLogger(__name__)

# Each entry migrates the schema from version i to i + 1; PRAGMA user_version holds the version.
# Append only: a database that has run a migration never runs it again.
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
    """
    -- Written by the health check (Storage.check), never read: one row, always there.
    CREATE TABLE health_probe (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        payload BLOB
    );
    INSERT INTO health_probe (id) VALUES (1);
    """,
    # Runs with inputs, an outcome and details. SQLite cannot drop the NOT NULL of the powers
    # (a run that did not converge has none), so the table is rebuilt, ids and AUTOINCREMENT's
    # high-water mark carried over. Earlier runs all computed the seed network: they read back
    # as converged runs with the seed inputs (written out here, as they were then) and no details.
    """
    CREATE TABLE simulations_v3 (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        launched_at    TEXT NOT NULL,  -- UTC, fixed-width ISO 8601, so text order is time order
        finished_at    TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('converged', 'not_converged')),
        active_power   REAL,           -- MW; null when not converged
        reactive_power REAL,           -- MVAr; null when not converged
        inputs         TEXT,           -- JSON object; null for a simulation that takes none
        message        TEXT,           -- the solver's message when not converged
        details        TEXT,           -- JSON (grid.Details); null when the simulation gave none
        CHECK ((status = 'converged') = (active_power IS NOT NULL)),
        CHECK ((active_power IS NULL) = (reactive_power IS NULL))
    );
    INSERT INTO simulations_v3 (id, launched_at, finished_at, status, active_power, reactive_power, inputs)
        SELECT id, launched_at, finished_at, 'converged', active_power, reactive_power,
               '{"load_p_mw":0.1,"load_q_mvar":0.05,"ext_grid_vm_pu":1.02,"line_length_km":0.1}'
        FROM simulations;
    DELETE FROM sqlite_sequence WHERE name = 'simulations_v3';
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'simulations_v3', seq FROM sqlite_sequence WHERE name = 'simulations';
    DROP TABLE simulations;
    ALTER TABLE simulations_v3 RENAME TO simulations;
    -- newest_launched (on every Redis reconnect): the newest converged launch, without a sort.
    CREATE INDEX simulations_status_launched_at ON simulations (status, launched_at);
    -- A page of one status, newest id first.
    CREATE INDEX simulations_status ON simulations (status, id);
    """,
    # Runs have a network, and two more outcomes. A CHECK cannot change, so the table is rebuilt
    # as in version 3; earlier runs all computed the seed network. Uploaded networks get a table.
    """
    CREATE TABLE simulations_v4 (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        launched_at    TEXT NOT NULL,  -- UTC, fixed-width ISO 8601, so text order is time order
        finished_at    TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (status IN ('converged', 'not_converged', 'timed_out', 'failed')),
        active_power   REAL,           -- MW; null unless converged
        reactive_power REAL,           -- MVAr; null unless converged
        inputs         TEXT,           -- JSON object; null for a simulation that takes none
        message        TEXT,           -- the solver's message, or why the run failed
        details        TEXT,           -- JSON (grid.Details); null when the simulation gave none
        network        TEXT NOT NULL,  -- its id: 'seed', a catalog name or 'upload-<seq>'
        network_sha256 TEXT,           -- an upload's, at the time of the run (the upload may be
                                       -- deleted, its id never reused); null for other networks
        CHECK ((status = 'converged') = (active_power IS NOT NULL)),
        CHECK ((active_power IS NULL) = (reactive_power IS NULL))
    );
    INSERT INTO simulations_v4 (id, launched_at, finished_at, status, active_power, reactive_power, inputs,
                                message, details, network)
        SELECT id, launched_at, finished_at, status, active_power, reactive_power, inputs, message, details, 'seed'
        FROM simulations;
    DELETE FROM sqlite_sequence WHERE name = 'simulations_v4';
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'simulations_v4', seq FROM sqlite_sequence WHERE name = 'simulations';
    DROP TABLE simulations;
    ALTER TABLE simulations_v4 RENAME TO simulations;
    -- newest_launched (on every Redis reconnect): the newest converged launch, without a sort.
    CREATE INDEX simulations_status_launched_at ON simulations (status, launched_at);
    -- A page of one status, newest id first.
    CREATE INDEX simulations_status ON simulations (status, id);
    -- A page of one network (?network=), newest id first.
    CREATE INDEX simulations_network ON simulations (network, id);

    CREATE TABLE networks (
        seq        INTEGER PRIMARY KEY AUTOINCREMENT,  -- the id is 'upload-' || seq; AUTOINCREMENT
                                                       -- so a deleted upload's id is never reused
        name       TEXT NOT NULL,
        sha256     TEXT NOT NULL UNIQUE,  -- of the document, lower-case hex: the same upload is stored once
        size_bytes INTEGER NOT NULL,
        created_at TEXT NOT NULL,         -- UTC, fixed-width ISO 8601 (models.format_time)
        counts     TEXT NOT NULL,         -- JSON object: element table name -> row count
        inputs     TEXT NOT NULL,         -- JSON array: names of the run inputs that apply to it
        document   BLOB NOT NULL          -- the pandapower JSON as uploaded; read only to run it
    );
    """,
)

_COLUMNS = "id, active_power, reactive_power, launched_at, status, inputs, message, network, network_sha256"
# Every column of `networks` but the document, which can be megabytes: read only to run it.
_NETWORK_COLUMNS = "seq, name, sha256, size_bytes, created_at, counts, inputs"

# The health check's write: a value DB_PROBE_PAGES pages long needs pages of its own (overflow
# pages), which SQLite takes from the free list or by growing the file, as a run's insert does
# when its pages are full; setting it back frees them again for the next check, or for runs.
_PROBE_CLAIM = "UPDATE health_probe SET payload = zeroblob(? * (SELECT page_size FROM pragma_page_size()))"
_PROBE_FREE = "UPDATE health_probe SET payload = NULL"


class Storage:
    """The app's one SQLite connection, in autocommit mode, with one transaction at a time.

    aiosqlite runs each call on one thread, but a transaction spans several awaited calls: a
    statement from another task between BEGIN and COMMIT would join that transaction, and its
    failure would roll back the other run's row. So every use of the connection holds `_lock`;
    reads too, so that they never see a row whose COMMIT has yet to succeed.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self._healthy = True  # the last check's answer, to log changes only
        self._probe: asyncio.Task[bool] | None = None
        self._probed_at = 0.0

    async def insert_run(self, run: SimulationResult, finished_at: datetime) -> int:
        """Store one run (its id is ignored) in its own transaction; the id is only returned once
        the row is durable."""
        assert run.launched_at is not None
        assert run.status is not None
        assert run.network is not None
        inputs = dumps(dict(run.inputs)) if run.inputs is not None else None
        try:
            async with self._lock, self._transaction():
                cursor = await self._conn.execute(
                    "INSERT INTO simulations (launched_at, finished_at, status, active_power, reactive_power,"
                    " inputs, message, details, network, network_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        format_time(run.launched_at),
                        format_time(finished_at),
                        run.status,
                        run.active_power,
                        run.reactive_power,
                        inputs,
                        run.message,
                        run.details_json,
                        run.network,
                        run.network_sha256,
                    ),
                )
        except aiosqlite.Error as exc:
            log.error("storing a run failed: %s", exc)  # the detail stays here, not in the answer
            raise Unavailable("database error, the run was not stored") from exc
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def get(self, run_id: int, with_details: bool = False) -> SimulationResult | None:
        columns = f"{_COLUMNS}, details" if with_details else _COLUMNS
        rows = await self._fetch(f"SELECT {columns} FROM simulations WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    async def page(
        self, limit: int, before: int | None, status: Status | None = None, network: str | None = None
    ) -> list[SimulationResult]:
        """Newest first by id, of one status and one network, or all; `before` is exclusive, for
        keyset pagination."""
        where = ["id < ?"] if before is not None else []
        params: list[object] = [before] if before is not None else []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if network is not None:
            where.append("network = ?")
            params.append(network)
        condition = f"WHERE {' AND '.join(where)} " if where else ""
        return await self._fetch(
            f"SELECT {_COLUMNS} FROM simulations {condition}ORDER BY id DESC LIMIT ?", (*params, limit)
        )

    async def newest_launched(self) -> SimulationResult | None:
        """The converged run launched last: the one `powersim:latest` should hold."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM simulations WHERE status = 'converged' ORDER BY launched_at DESC, id DESC LIMIT 1",
            (),
        )
        return rows[0] if rows else None

    async def add_network(self, upload: NewUpload) -> tuple[NetworkEntry, bool]:
        """Store an upload, unless one with the same document is stored already: that one's
        entry then, and False. The look-up and the insert share a transaction, so two equal
        uploads at once store one row."""
        select = f"SELECT {_NETWORK_COLUMNS} FROM networks WHERE sha256 = ?"
        try:
            async with self._lock, self._transaction():
                async with self._conn.execute(select, (upload.sha256,)) as cursor:
                    row = await cursor.fetchone()
                created = row is None
                if created:
                    await self._conn.execute(
                        "INSERT INTO networks (name, sha256, size_bytes, created_at, counts, inputs, document)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            upload.name,
                            upload.sha256,
                            upload.size_bytes,
                            format_time(upload.created_at),
                            dumps(dict(upload.counts)),
                            dumps(list(upload.inputs)),
                            upload.document,
                        ),
                    )
                    # Read back: the entry is then exactly what a later get_network gives.
                    async with self._conn.execute(select, (upload.sha256,)) as cursor:
                        row = await cursor.fetchone()
        except aiosqlite.Error as exc:
            log.error("storing a network failed: %s", exc)
            raise Unavailable("database error, the network was not stored") from exc
        assert row is not None
        return _network(row), created

    async def list_networks(self) -> list[NetworkEntry]:
        """The uploads, oldest first."""
        rows = await self._fetch_raw(f"SELECT {_NETWORK_COLUMNS} FROM networks ORDER BY seq", ())
        return [_network(row) for row in rows]

    async def get_network(self, network_id: str) -> NetworkEntry | None:
        seq = parse_upload_id(network_id)
        if seq is None:
            return None
        rows = await self._fetch_raw(f"SELECT {_NETWORK_COLUMNS} FROM networks WHERE seq = ?", (seq,))
        return _network(rows[0]) if rows else None

    async def network_document(self, network_id: str) -> tuple[str, bytes] | None:
        """An upload's sha256 and document, to run it; None when there is no such upload."""
        seq = parse_upload_id(network_id)
        if seq is None:
            return None
        rows = await self._fetch_raw("SELECT sha256, document FROM networks WHERE seq = ?", (seq,))
        return (rows[0][0], rows[0][1]) if rows else None

    async def delete_network(self, network_id: str) -> bool:
        """Whether an upload was deleted. Runs on it stay in the history, with its id and sha256."""
        seq = parse_upload_id(network_id)
        if seq is None:
            return False
        try:
            async with self._lock, self._transaction():
                cursor = await self._conn.execute("DELETE FROM networks WHERE seq = ?", (seq,))
        except aiosqlite.Error as exc:
            log.error("deleting a network failed: %s", exc)
            raise Unavailable("database error, the network was not deleted") from exc
        return cursor.rowcount > 0

    async def check(self) -> bool:
        """Whether a run could be stored now; one probe per DB_PROBE_INTERVAL_S at most, its answer
        shared by every caller meanwhile. /healthz is open to anyone, and a flood of probes would
        otherwise queue with runs for the write lock and grow the WAL."""
        loop = asyncio.get_running_loop()
        if self._probe is None or (self._probe.done() and loop.time() - self._probed_at >= DB_PROBE_INTERVAL_S):
            self._probed_at = loop.time()
            self._probe = asyncio.create_task(self._write_probe())
        return await asyncio.shield(self._probe)

    async def close(self) -> None:
        """Let a probe in progress finish before the connection goes."""
        if self._probe is not None:
            await asyncio.gather(self._probe, return_exceptions=True)

    async def _write_probe(self) -> bool:
        """Whether a run could be stored now: a real write in its own transaction, not `SELECT 1`.

        It fails on a read-only database, a full one (disk, or SQLite's page limit), or one locked
        by another writer for longer than DB_PROBE_BUSY_TIMEOUT_MS (a probe must answer quickly).
        """
        try:
            async with self._lock:
                await self._conn.execute(f"PRAGMA busy_timeout = {DB_PROBE_BUSY_TIMEOUT_MS}")
                try:
                    async with self._transaction():
                        await self._conn.execute(_PROBE_CLAIM, (DB_PROBE_PAGES,))
                        await self._conn.execute(_PROBE_FREE)
                finally:
                    await self._conn.execute(f"PRAGMA busy_timeout = {DB_BUSY_TIMEOUT_MS}")
        except aiosqlite.Error as exc:
            if self._healthy:
                log.warning("database check failed: %s", exc)
            self._healthy = False
            return False
        if not self._healthy:
            log.info("database check passes again")
        self._healthy = True
        return True

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """With `_lock` held: BEGIN IMMEDIATE (the write lock up front, so no busy upgrade from a
        read lock mid-way), then COMMIT, or ROLLBACK when anything failed or was cancelled."""
        committed = False
        try:
            # Inside the try: cancelled while BEGIN is queued, the ROLLBACK queues after it.
            await self._conn.execute("BEGIN IMMEDIATE")
            yield
            await self._conn.execute("COMMIT")
            committed = True
        finally:
            if not committed:
                await self._rollback()

    async def _fetch(self, sql: str, params: tuple[object, ...]) -> list[SimulationResult]:
        return [_run(row) for row in await self._fetch_raw(sql, params)]

    async def _fetch_raw(self, sql: str, params: tuple[object, ...]) -> list[aiosqlite.Row]:
        try:
            async with self._lock, self._conn.execute(sql, params) as cursor:
                return list(await cursor.fetchall())
        except aiosqlite.Error as exc:
            log.error("database read failed: %s", exc)
            raise Unavailable("database error") from exc

    async def _rollback(self) -> None:
        try:
            await self._conn.execute("ROLLBACK")
        except aiosqlite.Error as exc:
            # None open is fine (BEGIN failed, or SQLite ended a failed COMMIT); one left open is not.
            if self._conn.in_transaction:
                log.error("rollback failed: %s", exc)


def _run(row: aiosqlite.Row) -> SimulationResult:
    """A row of _COLUMNS (and details, when selected). Inputs are parsed here: a few numbers;
    details stay text, since they can be large and most callers pass them on unread."""
    return SimulationResult(
        id=row[0],
        active_power=row[1],
        reactive_power=row[2],
        launched_at=parse_time(row[3]),
        status=row[4],
        inputs=json.loads(row[5]) if row[5] is not None else None,
        message=row[6],
        network=row[7],
        network_sha256=row[8],
        details_json=row[9] if len(row) > 9 else None,
    )


def _network(row: aiosqlite.Row) -> NetworkEntry:
    """A row of _NETWORK_COLUMNS."""
    return NetworkEntry(
        id=upload_id(row[0]),
        name=row[1],
        source="upload",
        counts=json.loads(row[5]),
        inputs=tuple(json.loads(row[6])),
        sha256=row[2],
        size_bytes=row[3],
        created_at=parse_time(row[4]),
    )


@asynccontextmanager
async def open_storage(path: Path) -> AsyncIterator[Storage]:
    """Open (creating with owner-only permissions) and migrate the database."""
    try:
        await asyncio.to_thread(_create_private, path)
        # Autocommit: the driver opens no transaction of its own; Storage's are explicit.
        conn = await aiosqlite.connect(path, isolation_level=None)
    except (OSError, aiosqlite.Error) as exc:
        raise StartupError(f"cannot open database {path}: {exc}") from exc
    try:
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute(f"PRAGMA busy_timeout = {DB_BUSY_TIMEOUT_MS}")
            await migrate(conn)
        except aiosqlite.Error as exc:  # locked, read-only, corrupt: one line, not a traceback
            raise StartupError(f"cannot prepare database {path}: {exc}") from exc
        storage = Storage(conn)
        try:
            yield storage
        finally:
            await storage.close()
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
