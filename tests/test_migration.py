"""Upgrading a real history file, written as earlier releases wrote it, to today's schema.

The old files are built with the stdlib sqlite3 module and exactly the DDL those releases ran
(MIGRATIONS[:version]), not with today's code, then opened with open_storage as the server does.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from powersim.errors import StartupError
from powersim.models import SimulationResult
from powersim.storage import MIGRATIONS, open_storage

SEED_INPUTS = {"load_p_mw": 0.1, "load_q_mvar": 0.05, "ext_grid_vm_pu": 1.02, "line_length_km": 0.1}
SEED_TEXT = '{"load_p_mw":0.1,"load_q_mvar":0.05,"ext_grid_vm_pu":1.02,"line_length_km":0.1}'
V1_COLUMNS = ["id", "launched_at", "finished_at", "active_power", "reactive_power"]
V3_COLUMNS = [*V1_COLUMNS[:3], "status", *V1_COLUMNS[3:], "inputs", "message", "details"]
COLUMNS = [*V3_COLUMNS, "network", "network_sha256"]
NETWORK_COLUMNS = ["seq", "name", "sha256", "size_bytes", "created_at", "counts", "inputs", "document"]
T0 = datetime(2024, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class OldRow:
    launched_at: datetime
    active_power: float
    reactive_power: float


# Launch order is not id order (2 launched last), so the newest launch is not just the top id.
OLD_ROWS = [
    OldRow(T0, 0.1, 0.05),
    OldRow(T0 + timedelta(days=2), 0.1, 0.05),
    OldRow(T0 + timedelta(days=1), 0.25, -0.125),
    OldRow(T0 + timedelta(hours=1), 0.1, 0.05),
]


def old_time(moment: datetime) -> str:
    """The text version 1 wrote: fixed-width UTC with microseconds and a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_old_database(path: Path, version: int, rows: list[OldRow], delete: list[int]) -> None:
    """A file as release `version` left it: its migrations, its rows, some of them deleted.
    Release 3 wrote a status and inputs: the seed network's run, converged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(f"BEGIN; {''.join(MIGRATIONS[:version])}; PRAGMA user_version = {version}; COMMIT;")
        columns = [c[1] for c in conn.execute("PRAGMA table_info(simulations)")]
        assert columns == (V3_COLUMNS if version == 3 else V1_COLUMNS)  # as that release made it
        for row in rows:
            times = (old_time(row.launched_at), old_time(row.launched_at + timedelta(seconds=0.05)))
            if version == 3:
                conn.execute(
                    "INSERT INTO simulations (launched_at, finished_at, status, active_power, reactive_power, inputs)"
                    " VALUES (?, ?, 'converged', ?, ?, ?)",
                    (*times, row.active_power, row.reactive_power, SEED_TEXT),
                )
            else:
                conn.execute(
                    "INSERT INTO simulations (launched_at, finished_at, active_power, reactive_power)"
                    " VALUES (?, ?, ?, ?)",
                    (*times, row.active_power, row.reactive_power),
                )
        conn.executemany("DELETE FROM simulations WHERE id = ?", [(i,) for i in delete])
        conn.commit()


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version


def as_converged(run_id: int, row: OldRow) -> SimulationResult:
    """How an old row reads back: a converged run of the seed network, no message, no details."""
    return SimulationResult(
        run_id, row.active_power, row.reactive_power, row.launched_at, "converged", SEED_INPUTS, None, network="seed"
    )


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize(
    ("kept", "deleted", "next_id"),
    [
        pytest.param([1, 2, 3, 4], [], 5, id="all-rows"),
        # AUTOINCREMENT never reuses an id: the high-water mark (4) survives the table rebuild.
        pytest.param([1, 2, 3], [4], 5, id="top-row-deleted"),
        pytest.param([2, 3], [1, 4], 5, id="both-ends-deleted"),
        pytest.param([], [1, 2, 3, 4], 5, id="all-deleted"),
    ],
)
async def test_an_old_database_is_upgraded_and_its_runs_read_back(
    tmp_path: Path, version: int, kept: list[int], deleted: list[int], next_id: int
) -> None:
    path = tmp_path / "data" / "powersim.db"
    write_old_database(path, version, OLD_ROWS, deleted)
    expected = [as_converged(i, OLD_ROWS[i - 1]) for i in kept]

    async with open_storage(path) as storage:
        assert await storage.page(10, None) == expected[::-1]
        assert await storage.page(10, None, "converged") == expected[::-1]
        assert await storage.page(10, None, "not_converged") == []
        assert await storage.page(10, None, network="seed") == expected[::-1]
        assert await storage.page(10, None, network="upload-1") == []
        assert await storage.list_networks() == []
        for run in expected:
            assert run.id is not None
            got = await storage.get(run.id, with_details=True)
            assert got == run
            assert got is not None
            assert (got.message, got.details_json) == (None, None)
            assert got.inputs == SEED_INPUTS
            assert (got.network, got.network_sha256) == ("seed", None)
        for gone in deleted:
            assert await storage.get(gone) is None
        newest = max(expected, key=lambda r: r.launched_at or T0, default=None)
        assert await storage.newest_launched() == newest

        # New runs continue the old id sequence; a later not-converged run is history, not latest.
        launched = T0 + timedelta(days=10)
        converged = SimulationResult(
            None, 0.2, 0.1, launched, "converged", SEED_INPUTS | {"load_p_mw": 0.2}, network="seed"
        )
        converged_id = await storage.insert_run(converged, launched + timedelta(seconds=1))
        assert converged_id == next_id
        diverged = SimulationResult(
            None,
            None,
            None,
            launched + timedelta(days=1),
            "not_converged",
            SEED_INPUTS | {"load_p_mw": 1000},
            "nope",
            network="seed",
        )
        assert await storage.insert_run(diverged, launched + timedelta(days=1, seconds=1)) == next_id + 1
        assert await storage.newest_launched() == SimulationResult(
            next_id, 0.2, 0.1, launched, "converged", SEED_INPUTS | {"load_p_mw": 0.2}, None, network="seed"
        )
        assert [r.id for r in await storage.page(10, None, "not_converged")] == [next_id + 1]
        assert [r.id for r in await storage.page(10, None)] == [next_id + 1, next_id, *kept[::-1]]

    assert user_version(path) == len(MIGRATIONS)
    with closing(sqlite3.connect(path)) as conn:
        assert [c[1] for c in conn.execute("PRAGMA table_info(simulations)")] == COLUMNS
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(simulations)")}
        assert {"simulations_status_launched_at", "simulations_status", "simulations_network"} <= indexes
        assert [c[1] for c in conn.execute("PRAGMA table_info(networks)")] == NETWORK_COLUMNS
        assert conn.execute("SELECT count(*) FROM networks").fetchone() == (0,)
        assert conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall() == [("simulations", next_id + 1)]
        assert conn.execute("SELECT id, payload FROM health_probe").fetchall() == [(1, None)]
        old = conn.execute(
            "SELECT launched_at, status, inputs, message, details, network, network_sha256 FROM simulations"
            " WHERE id < ? ORDER BY id",
            (next_id,),
        ).fetchall()
        assert old == [
            (old_time(OLD_ROWS[i - 1].launched_at), "converged", SEED_TEXT, None, None, "seed", None) for i in kept
        ]


async def test_a_version_1_database_that_never_stored_a_run(tmp_path: Path) -> None:
    """No AUTOINCREMENT high-water mark to carry over: the first run gets id 1."""
    path = tmp_path / "data" / "powersim.db"
    write_old_database(path, 1, [], [])
    async with open_storage(path) as storage:
        assert await storage.page(10, None) == []
        assert await storage.newest_launched() is None
        assert await storage.insert_run(SimulationResult(None, 0.1, 0.05, T0, "converged", network="seed"), T0) == 1
    assert user_version(path) == len(MIGRATIONS)


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_the_upgraded_table_refuses_inconsistent_rows(tmp_path: Path, version: int) -> None:
    """The CHECK constraints: a status is one of the four; a converged run has both powers, any
    other run neither; every run has a network."""
    path = tmp_path / "data" / "powersim.db"
    write_old_database(path, version, OLD_ROWS[:1], [])
    async with open_storage(path):
        pass
    insert = (
        "INSERT INTO simulations (launched_at, finished_at, status, active_power, reactive_power, network,"
        " network_sha256) VALUES ('2024-02-01T00:00:00.000000Z', '2024-02-01T00:00:01.000000Z', ?, ?, ?, ?, ?)"
    )
    with closing(sqlite3.connect(path)) as conn:
        for status, active, reactive in (
            ("converged", None, 0.05),
            ("converged", 0.1, None),
            ("converged", None, None),
            ("not_converged", 0.1, 0.05),
            ("not_converged", None, 0.05),
            ("not_converged", 0.1, None),
            ("timed_out", 0.1, 0.05),
            ("timed_out", 0.1, None),
            ("failed", 0.1, 0.05),
            ("failed", None, 0.05),
            ("Converged", 0.1, 0.05),
            ("crashed", None, None),
        ):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
                conn.execute(insert, (status, active, reactive, "seed", None))
        with pytest.raises(sqlite3.IntegrityError, match=r"NOT NULL constraint failed: simulations\.status$"):
            conn.execute(insert, (None, 0.1, 0.05, "seed", None))
        with pytest.raises(sqlite3.IntegrityError, match=r"NOT NULL constraint failed: simulations\.network$"):
            conn.execute(insert, ("converged", 0.1, 0.05, None, None))
        # The shapes that are allowed: powers with converged only, a sha256 on runs of uploads.
        conn.execute(insert, ("not_converged", None, None, "case9", None))
        conn.execute(insert, ("timed_out", None, None, "upload-3", "ab" * 32))
        conn.execute(insert, ("failed", None, None, "seed", None))
        conn.execute(insert, ("converged", 0.1, 0.05, "upload-3", "ab" * 32))
        conn.commit()
        assert conn.execute("SELECT id, status, network, network_sha256 FROM simulations ORDER BY id").fetchall() == [
            (1, "converged", "seed", None),
            (2, "not_converged", "case9", None),
            (3, "timed_out", "upload-3", "ab" * 32),
            (4, "failed", "seed", None),
            (5, "converged", "upload-3", "ab" * 32),
        ]


async def test_a_version_3_database_keeps_every_column_of_every_outcome(tmp_path: Path) -> None:
    """Release 3 stored not-converged runs, other inputs, messages and details: all carried over
    unchanged, each run now on the seed network, and the id sequence continues past a deleted top."""
    path = tmp_path / "data" / "powersim.db"
    write_old_database(path, 3, [], [])
    v3_rows = [
        (1, "2024-01-01T00:00:00.000000Z", "2024-01-01T00:00:01.000000Z", "converged", 0.1, 0.05, SEED_TEXT, None,
         '{"buses":[]}'),
        (2, "2024-01-02T00:00:00.000000Z", "2024-01-02T00:00:01.000000Z", "not_converged", None, None,
         '{"load_p_mw":1000.0}', "Power Flow nr did not converge after 10 iterations!", None),
        (3, "2024-01-03T00:00:00.000000Z", "2024-01-03T00:00:01.000000Z", "converged", 0.2, -0.1, None, None, None),
        (4, "2024-01-04T00:00:00.000000Z", "2024-01-04T00:00:01.000000Z", "converged", 0.3, 0.1, None, None, None),
    ]  # fmt: skip
    with closing(sqlite3.connect(path)) as conn:
        conn.executemany(f"INSERT INTO simulations VALUES ({', '.join('?' * 9)})", v3_rows)
        conn.execute("DELETE FROM simulations WHERE id = 4")
        conn.commit()

    async with open_storage(path) as storage:
        assert [r.id for r in await storage.page(10, None, network="seed")] == [3, 2, 1]
        diverged = await storage.get(2, with_details=True)
        assert diverged == SimulationResult(
            2,
            None,
            None,
            datetime(2024, 1, 2, tzinfo=UTC),
            "not_converged",
            {"load_p_mw": 1000.0},
            "Power Flow nr did not converge after 10 iterations!",
            network="seed",
        )
        first = await storage.get(1, with_details=True)
        assert first is not None
        assert (first.details_json, first.network, first.network_sha256) == ('{"buses":[]}', "seed", None)
        assert await storage.insert_run(SimulationResult(None, None, None, T0, "failed", network="seed"), T0) == 5

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT * FROM simulations WHERE id < 5 ORDER BY id").fetchall() == [
            (*row, "seed", None) for row in v3_rows[:3]
        ]


async def test_a_database_from_a_newer_powersim_is_refused_untouched(tmp_path: Path) -> None:
    """A downgrade must not run today's migrations over a schema it does not know."""
    path = tmp_path / "data" / "powersim.db"
    path.parent.mkdir()
    newer = len(MIGRATIONS) + 1
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript("BEGIN; CREATE TABLE simulations (id INTEGER PRIMARY KEY, future TEXT); COMMIT;")
        conn.execute("INSERT INTO simulations (future) VALUES ('kept')")
        conn.execute(f"PRAGMA user_version = {newer}")
        conn.commit()
    with pytest.raises(
        StartupError, match=f"version {newer} is newer than this powersim knows \\({len(MIGRATIONS)}\\)"
    ):
        async with open_storage(path):
            pytest.fail("opened a database of a newer schema")
    assert user_version(path) == newer
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT * FROM simulations").fetchall() == [(1, "kept")]
        assert [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["simulations"]


async def test_the_newest_converged_launch_is_found_through_an_index(tmp_path: Path) -> None:
    """Run on every Redis reconnect, under the storage lock: never a sort of the whole history."""
    path = tmp_path / "data" / "powersim.db"
    async with open_storage(path):
        pass
    with closing(sqlite3.connect(path)) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM simulations WHERE status = 'converged'"
            " ORDER BY launched_at DESC, id DESC LIMIT 1"
        ).fetchall()
    assert [row[3] for row in plan] == ["SEARCH simulations USING INDEX simulations_status_launched_at (status=?)"]


async def test_a_page_of_one_network_is_read_through_an_index(tmp_path: Path) -> None:
    """?network= pages, newest id first, without a scan of other networks' runs."""
    path = tmp_path / "data" / "powersim.db"
    async with open_storage(path):
        pass
    with closing(sqlite3.connect(path)) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM simulations WHERE network = 'seed' AND id < 10 ORDER BY id DESC LIMIT 5"
        ).fetchall()
    assert [row[3] for row in plan] == ["SEARCH simulations USING INDEX simulations_network (network=? AND id<?)"]
