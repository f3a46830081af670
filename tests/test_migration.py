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
V1_COLUMNS = ["id", "launched_at", "finished_at", "active_power", "reactive_power"]
COLUMNS = [
    "id",
    "launched_at",
    "finished_at",
    "status",
    "active_power",
    "reactive_power",
    "inputs",
    "message",
    "details",
]
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
    """A file as release `version` left it: its migrations, its rows, some of them deleted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(f"BEGIN; {''.join(MIGRATIONS[:version])}; PRAGMA user_version = {version}; COMMIT;")
        assert [c[1] for c in conn.execute("PRAGMA table_info(simulations)")] == V1_COLUMNS  # as v1 made it
        for row in rows:
            conn.execute(
                "INSERT INTO simulations (launched_at, finished_at, active_power, reactive_power) VALUES (?, ?, ?, ?)",
                (
                    old_time(row.launched_at),
                    old_time(row.launched_at + timedelta(seconds=0.05)),
                    row.active_power,
                    row.reactive_power,
                ),
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
        run_id, row.active_power, row.reactive_power, row.launched_at, "converged", SEED_INPUTS, None
    )


@pytest.mark.parametrize("version", [1, 2])
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
        for run in expected:
            assert run.id is not None
            got = await storage.get(run.id, with_details=True)
            assert got == run
            assert got is not None
            assert (got.message, got.details_json) == (None, None)
            assert got.inputs == SEED_INPUTS
        for gone in deleted:
            assert await storage.get(gone) is None
        newest = max(expected, key=lambda r: r.launched_at or T0, default=None)
        assert await storage.newest_launched() == newest

        # New runs continue the old id sequence; a later not-converged run is history, not latest.
        launched = T0 + timedelta(days=10)
        converged = SimulationResult(None, 0.2, 0.1, launched, "converged", SEED_INPUTS | {"load_p_mw": 0.2})
        converged_id = await storage.insert_run(converged, launched + timedelta(seconds=1))
        assert converged_id == next_id
        diverged = SimulationResult(
            None, None, None, launched + timedelta(days=1), "not_converged", SEED_INPUTS | {"load_p_mw": 1000}, "nope"
        )
        assert await storage.insert_run(diverged, launched + timedelta(days=1, seconds=1)) == next_id + 1
        assert await storage.newest_launched() == SimulationResult(
            next_id, 0.2, 0.1, launched, "converged", SEED_INPUTS | {"load_p_mw": 0.2}, None
        )
        assert [r.id for r in await storage.page(10, None, "not_converged")] == [next_id + 1]
        assert [r.id for r in await storage.page(10, None)] == [next_id + 1, next_id, *kept[::-1]]

    assert user_version(path) == len(MIGRATIONS)
    with closing(sqlite3.connect(path)) as conn:
        assert [c[1] for c in conn.execute("PRAGMA table_info(simulations)")] == COLUMNS
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(simulations)")}
        assert {"simulations_status_launched_at", "simulations_status"} <= indexes
        assert conn.execute("SELECT name, seq FROM sqlite_sequence").fetchall() == [("simulations", next_id + 1)]
        assert conn.execute("SELECT id, payload FROM health_probe").fetchall() == [(1, None)]
        old = conn.execute(
            "SELECT launched_at, status, inputs, message, details FROM simulations WHERE id < ? ORDER BY id",
            (next_id,),
        ).fetchall()
        seed_text = '{"load_p_mw":0.1,"load_q_mvar":0.05,"ext_grid_vm_pu":1.02,"line_length_km":0.1}'
        assert old == [(old_time(OLD_ROWS[i - 1].launched_at), "converged", seed_text, None, None) for i in kept]


async def test_a_version_1_database_that_never_stored_a_run(tmp_path: Path) -> None:
    """No AUTOINCREMENT high-water mark to carry over: the first run gets id 1."""
    path = tmp_path / "data" / "powersim.db"
    write_old_database(path, 1, [], [])
    async with open_storage(path) as storage:
        assert await storage.page(10, None) == []
        assert await storage.newest_launched() is None
        assert await storage.insert_run(SimulationResult(None, 0.1, 0.05, T0, "converged"), T0) == 1
    assert user_version(path) == len(MIGRATIONS)


async def test_the_upgraded_table_refuses_inconsistent_rows(tmp_path: Path) -> None:
    """The CHECK constraints: a status is one of the two; a converged run has both powers, a
    not-converged one neither."""
    path = tmp_path / "data" / "powersim.db"
    write_old_database(path, 1, OLD_ROWS[:1], [])
    async with open_storage(path):
        pass
    insert = (
        "INSERT INTO simulations (launched_at, finished_at, status, active_power, reactive_power)"
        " VALUES ('2024-02-01T00:00:00.000000Z', '2024-02-01T00:00:01.000000Z', ?, ?, ?)"
    )
    with closing(sqlite3.connect(path)) as conn:
        for status, active, reactive in (
            ("converged", None, 0.05),
            ("converged", 0.1, None),
            ("converged", None, None),
            ("not_converged", 0.1, 0.05),
            ("not_converged", None, 0.05),
            ("not_converged", 0.1, None),
            ("failed", 0.1, 0.05),
            ("Converged", 0.1, 0.05),
        ):
            with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
                conn.execute(insert, (status, active, reactive))
        with pytest.raises(sqlite3.IntegrityError, match="NOT NULL constraint failed"):
            conn.execute(insert, (None, 0.1, 0.05))
        conn.execute(insert, ("not_converged", None, None))  # the two shapes that are allowed
        conn.execute(insert, ("converged", 0.1, 0.05))
        conn.commit()
        assert conn.execute("SELECT id, status FROM simulations ORDER BY id").fetchall() == [
            (1, "converged"),
            (2, "not_converged"),
            (3, "converged"),
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
