"""Uploaded networks in SQLite, and runs that name their network: real database files."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from powersim.errors import Unavailable
from powersim.models import STATUSES, SimulationResult, Status
from powersim.networks import NetworkEntry, NewUpload
from powersim.storage import Storage, open_storage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
COUNTS = {"bus": 9, "line": 9, "load": 3, "gen": 2}
INPUTS = ("load_scaling", "sgen_scaling", "ext_grid_vm_pu")
# Ids that are not an upload's, or not in the canonical form: never found, never an error.
MALFORMED_IDS = [
    "",
    "seed",
    "case9",
    "upload-",
    "upload-0",
    "upload-01",
    "upload--1",
    "upload-1x",
    "upload-1 ",
    " upload-1",
    "UPLOAD-1",
    "upload-1.0",
    "upload-\u0661",  # ARABIC-INDIC DIGIT ONE: int() would take it
    "upload-" + "9" * 19,  # past SQLite's 64-bit integers
    "1",
]


def upload(document: bytes, name: str = "grid", created_at: datetime = T0) -> NewUpload:
    return NewUpload(
        name=name,
        sha256=hashlib.sha256(document).hexdigest(),
        size_bytes=len(document),
        created_at=created_at,
        counts=COUNTS,
        inputs=INPUTS,
        document=document,
    )


def entry_of(new: NewUpload, network_id: str) -> NetworkEntry:
    return NetworkEntry(
        id=network_id,
        name=new.name,
        source="upload",
        counts=new.counts,
        inputs=new.inputs,
        sha256=new.sha256,
        size_bytes=new.size_bytes,
        created_at=new.created_at,
    )


def run(
    network: str, status: Status = "converged", sha256: str | None = None, launched_at: datetime = T0
) -> SimulationResult:
    converged = status == "converged"
    return SimulationResult(
        id=None,
        active_power=0.25 if converged else None,
        reactive_power=-0.125 if converged else None,
        launched_at=launched_at,
        status=status,
        inputs={"load_scaling": 1.2},
        message=None if converged else f"{status} on {network}",
        network=network,
        network_sha256=sha256,
    )


def db_rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "powersim.db"


@pytest.fixture
async def storage(path: Path) -> AsyncIterator[Storage]:
    async with open_storage(path) as opened:
        yield opened


async def test_an_upload_is_stored_once_by_its_sha256(storage: Storage, path: Path) -> None:
    first = upload(b'{"_module": "pandapower.auxiliary"}', name="feeder")
    entry, created = await storage.add_network(first)
    assert (entry, created) == (entry_of(first, "upload-1"), True)

    # The same document under another name and time: the stored entry, untouched.
    again = upload(first.document, name="feeder, again", created_at=T0 + timedelta(days=1))
    assert await storage.add_network(again) == (entry_of(first, "upload-1"), False)
    assert await storage.list_networks() == [entry]
    assert await storage.get_network("upload-1") == entry
    assert db_rows(path, "SELECT seq, name, created_at FROM networks") == [(1, "feeder", "2025-03-01T12:00:00.000000Z")]


async def test_the_stored_entry_reads_back_as_listed(storage: Storage, path: Path) -> None:
    """Counts and inputs are JSON in the row, the time fixed-width UTC: an entry gives back the
    same values, the time as the same instant in UTC."""
    plus_two = datetime(2025, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    new = upload(b"{}", name="zoned", created_at=plus_two)
    entry, _ = await storage.add_network(new)
    assert entry.created_at == plus_two
    assert entry.created_at is not None
    assert entry.created_at.tzinfo == UTC
    assert entry.counts == COUNTS
    assert entry.inputs == INPUTS
    assert entry.to_dict() == {
        "id": "upload-1",
        "name": "zoned",
        "source": "upload",
        "counts": COUNTS,
        "inputs": list(INPUTS),
        "sha256": hashlib.sha256(b"{}").hexdigest(),
        "size_bytes": 2,
        "created_at": "2025-03-01T12:00:00.123456Z",
    }
    assert db_rows(path, "SELECT created_at, counts, inputs FROM networks") == [
        (
            "2025-03-01T12:00:00.123456Z",
            '{"bus":9,"line":9,"load":3,"gen":2}',
            '["load_scaling","sgen_scaling","ext_grid_vm_pu"]',
        )
    ]


async def test_two_equal_uploads_at_once_store_one_row(storage: Storage, path: Path) -> None:
    new = upload(b'{"same": true}')
    answers = await asyncio.gather(*(storage.add_network(new) for _ in range(5)))
    assert sorted(created for _, created in answers) == [False, False, False, False, True]
    assert {entry for entry, _ in answers} == {entry_of(new, "upload-1")}
    assert db_rows(path, "SELECT count(*) FROM networks") == [(1,)]


async def test_ids_increase_and_a_deleted_id_is_never_reused(storage: Storage) -> None:
    a, b, c, d = (upload(f'{{"n": {n}}}'.encode(), name=f"net {n}") for n in range(4))
    ids = [(await storage.add_network(new))[0].id for new in (a, b, c)]
    assert ids == ["upload-1", "upload-2", "upload-3"]

    assert await storage.delete_network("upload-3") is True  # the top one: AUTOINCREMENT keeps 3 used
    assert await storage.delete_network("upload-3") is False
    assert await storage.get_network("upload-3") is None
    assert await storage.network_document("upload-3") is None
    assert (await storage.add_network(d))[0].id == "upload-4"

    assert await storage.delete_network("upload-1") is True
    # The deleted document uploaded again is a new upload, with a new id.
    assert await storage.add_network(a) == (entry_of(a, "upload-5"), True)
    assert [entry.id for entry in await storage.list_networks()] == ["upload-2", "upload-4", "upload-5"]
    assert [entry.name for entry in await storage.list_networks()] == ["net 1", "net 3", "net 0"]


async def test_ids_are_not_reused_across_a_restart(path: Path) -> None:
    async with open_storage(path) as storage:
        await storage.add_network(upload(b"[1]"))
        await storage.add_network(upload(b"[2]"))
        assert await storage.delete_network("upload-2")
    async with open_storage(path) as storage:
        assert (await storage.add_network(upload(b"[3]")))[0].id == "upload-3"
        assert [entry.id for entry in await storage.list_networks()] == ["upload-1", "upload-3"]


async def test_entries_are_read_without_the_document(storage: Storage) -> None:
    """The list and the entry never read the document column, which can be megabytes."""
    big = upload(b"x" * 100_000, name="big")
    small = upload(b"y", name="small")
    await storage.add_network(big)
    await storage.add_network(small)
    statements: list[str] = []  # every statement SQLite runs from here on
    await storage._conn.set_trace_callback(statements.append)
    entries = await storage.list_networks()
    second = await storage.get_network("upload-2")

    assert len(statements) == 2
    assert all("FROM networks" in sql and "document" not in sql for sql in statements)
    assert entries == [entry_of(big, "upload-1"), entry_of(small, "upload-2")]
    assert second == entries[1]
    assert all("document" not in entry.to_dict() for entry in entries)


@pytest.mark.parametrize("network_id", MALFORMED_IDS)
async def test_ids_that_are_not_stored_uploads_are_not_found(storage: Storage, path: Path, network_id: str) -> None:
    stored, _ = await storage.add_network(upload(b"{}"))
    for absent in (network_id, "upload-2", "upload-999999999999999999"):
        assert await storage.get_network(absent) is None
        assert await storage.network_document(absent) is None
        assert await storage.delete_network(absent) is False
    assert await storage.list_networks() == [stored]
    assert db_rows(path, "SELECT seq FROM networks") == [(1,)]


async def test_a_megabyte_document_round_trips_byte_for_byte(storage: Storage, path: Path) -> None:
    document = random.Random(13).randbytes(1 << 20) + b"\x00\xff"  # NULs and invalid UTF-8 too
    new = upload(document)
    entry, _ = await storage.add_network(new)
    assert entry.size_bytes == (1 << 20) + 2

    stored = await storage.network_document(entry.id)
    assert stored is not None
    sha256, got = stored
    assert type(got) is bytes
    assert got == document
    assert sha256 == hashlib.sha256(got).hexdigest() == new.sha256
    assert db_rows(path, "SELECT typeof(document), length(document) FROM networks") == [("blob", (1 << 20) + 2)]


async def test_runs_keep_their_network_and_outcome(storage: Storage) -> None:
    sha = "0f" * 32
    runs = [run("seed", status, launched_at=T0 + timedelta(minutes=i)) for i, status in enumerate(STATUSES)] + [
        run("upload-7", status, sha, T0 + timedelta(hours=1, minutes=i)) for i, status in enumerate(STATUSES)
    ]
    ids = [await storage.insert_run(r, T0 + timedelta(days=1)) for r in runs]
    assert ids == list(range(1, 9))
    stored = [replace(r, id=i) for i, r in zip(ids, runs, strict=True)]

    for got in stored:
        assert got.id is not None
        assert await storage.get(got.id) == got
        with_details = await storage.get(got.id, with_details=True)
        assert with_details == got
        assert with_details is not None
        assert (with_details.network, with_details.network_sha256) == (got.network, got.network_sha256)
    assert await storage.page(20, None) == stored[::-1]
    # Only a converged run can be the latest: the one on the upload, launched later.
    assert await storage.newest_launched() == stored[4]
    assert stored[4].network_sha256 == sha
    for status in STATUSES:
        assert [r.id for r in await storage.page(20, None, status)] == [
            r.id for r in stored[::-1] if r.status == status
        ]


async def test_a_run_needs_a_network(storage: Storage) -> None:
    with pytest.raises(AssertionError):
        await storage.insert_run(SimulationResult(None, 0.1, 0.05, T0, "converged"), T0)
    assert await storage.page(10, None) == []


async def test_pages_of_one_network_and_status(storage: Storage) -> None:
    """Ids 1..12 go round three networks and the four outcomes; pages are keyset-paginated
    with `before`, newest id first, in any combination of the two filters."""
    networks = ["seed", "case9", "upload-1"]
    for i in range(12):
        network = networks[i % 3]
        sha = "ab" * 32 if network == "upload-1" else None
        await storage.insert_run(run(network, STATUSES[i % 4], sha, T0 + timedelta(seconds=i)), T0)
    # id = i + 1: seed 1, 4, 7, 10; case9 2, 5, 8, 11; upload-1 3, 6, 9, 12.
    # status: converged 1, 5, 9; not_converged 2, 6, 10; timed_out 3, 7, 11; failed 4, 8, 12.

    async def ids(
        limit: int, before: int | None, status: Status | None = None, network: str | None = None
    ) -> list[int]:
        return [r.id or 0 for r in await storage.page(limit, before, status, network)]

    assert await ids(10, None, network="seed") == [10, 7, 4, 1]
    assert await ids(2, None, network="case9") == [11, 8]
    assert await ids(2, 8, network="case9") == [5, 2]
    assert await ids(2, 2, network="case9") == []
    assert await ids(10, 9, network="upload-1") == [6, 3]
    assert await ids(10, None, network="upload-2") == []
    assert await ids(10, None, network="Seed") == []  # exact ids, no case folding
    assert await ids(10, None, network="%") == []  # nor patterns

    assert await ids(10, None, "converged", "upload-1") == [9]
    assert await ids(10, None, "failed", "seed") == [4]
    assert await ids(10, None, "timed_out", "case9") == [11]
    assert await ids(10, 11, "timed_out", "case9") == []
    assert await ids(10, None, "not_converged", "upload-1") == [6]
    assert await ids(10, 6, "not_converged", "upload-1") == []
    assert await ids(10, None, "converged", "case9") == [5]
    assert await ids(1, None, "converged") == [9]
    assert await ids(10, 9, "converged") == [5, 1]

    page = await storage.page(10, None, network="upload-1")
    assert {(r.network, r.network_sha256) for r in page} == {("upload-1", "ab" * 32)}
    assert {(r.network, r.network_sha256) for r in await storage.page(10, None, network="seed")} == {("seed", None)}


async def test_deleting_a_network_keeps_the_runs_on_it(storage: Storage, path: Path) -> None:
    new = upload(b'{"kept": "runs"}')
    entry, _ = await storage.add_network(new)
    on_it = run(entry.id, "converged", new.sha256)
    run_id = await storage.insert_run(on_it, T0)
    other = await storage.insert_run(run("seed"), T0)

    assert await storage.delete_network(entry.id) is True
    assert await storage.get_network(entry.id) is None
    assert await storage.list_networks() == []
    stored = replace(on_it, id=run_id)
    assert await storage.get(run_id) == stored
    assert await storage.page(10, None, network=entry.id) == [stored]
    assert await storage.newest_launched() == replace(run("seed"), id=other)
    assert db_rows(path, "SELECT id, network, network_sha256 FROM simulations ORDER BY id") == [
        (1, "upload-1", new.sha256),
        (2, "seed", None),
    ]


async def test_a_read_only_database_refuses_uploads_with_unavailable(
    storage: Storage, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As in test_storage: query_only makes SQLite refuse every write with SQLITE_READONLY, the
    # error a read-only file gives; as root, chmod cannot make the file read-only.
    kept, _ = await storage.add_network(upload(b"[0]"))
    await storage._conn.execute("PRAGMA query_only = ON")
    caplog.set_level(logging.ERROR)

    with pytest.raises(Unavailable) as refused:
        await storage.add_network(upload(b"[1]"))
    assert str(refused.value) == "database error, the network was not stored"
    with pytest.raises(Unavailable) as refused:
        await storage.delete_network(kept.id)
    assert str(refused.value) == "database error, the network was not deleted"
    # The detail is logged, not told to the client.
    assert "attempt to write a readonly database" in caplog.text
    assert "readonly" not in str(refused.value)
    assert not storage._conn.in_transaction  # rolled back: the next write starts clean

    # Reads go on. Even a duplicate is refused: its look-up runs in a write transaction, so
    # that two equal uploads at once store one row.
    assert await storage.list_networks() == [kept]
    assert await storage.get_network(kept.id) == kept
    with pytest.raises(Unavailable, match=r"^database error, the network was not stored$"):
        await storage.add_network(upload(b"[0]"))

    await storage._conn.execute("PRAGMA query_only = OFF")
    assert (await storage.add_network(upload(b"[1]")))[0].id == "upload-2"
    assert db_rows(path, "SELECT seq FROM networks ORDER BY seq") == [(1,), (2,)]


async def test_a_failed_read_is_unavailable_without_sqlite_text(
    storage: Storage, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await storage.add_network(upload(b"[0]"))
    with closing(sqlite3.connect(path)) as conn:  # as in test_storage: the table is gone
        conn.execute("ALTER TABLE networks RENAME TO moved")
        conn.commit()
    caplog.set_level(logging.ERROR)
    with pytest.raises(Unavailable, match=r"^database error$"):
        await storage.list_networks()
    with pytest.raises(Unavailable, match=r"^database error$"):
        await storage.get_network("upload-1")
    with pytest.raises(Unavailable, match=r"^database error$"):
        await storage.network_document("upload-1")
    with pytest.raises(Unavailable, match=r"^database error, the network was not stored$"):
        await storage.add_network(upload(b"[1]"))
    assert "no such table: networks" in caplog.text
