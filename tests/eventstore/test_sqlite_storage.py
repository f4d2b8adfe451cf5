"""SQLite storage: schema versions and upgrades, side tables on disk, storage faults.

The contract itself (same behaviour on every backend) is in `test_contract.py`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import TYPE_CHECKING

import msgspec
import pytest
from smithers.eventstore import (
    DatabaseQueryError,
    DatabaseWriteError,
    Lease,
    RunRecord,
    SQLiteEventStore,
    decode_event,
    encode_event,
)
from smithers.eventstore._sqlite import SCHEMA_VERSION
from smithers.eventstore.events import Event, NodeFinished, RunStatusChanged

if TYPE_CHECKING:
    from pathlib import Path

# The schema of version 1, as the first release created it (copied, never edited).
V1_DDL = """
CREATE TABLE IF NOT EXISTS _smithers_events (
    position INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    UNIQUE (run_id, seq)
);
CREATE TABLE IF NOT EXISTS _smithers_runs (
    run_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'running',
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS _smithers_runs_by_created ON _smithers_runs (created_at_ms);
PRAGMA user_version = 1;
"""

SIDE_TABLES = {"_smithers_leases", "_smithers_checkpoints"}

NOT_ROOT = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="needs a non-root POSIX user: root ignores file permissions",
)

# ---------------------------------------------------------------------------- helpers


def status_events(run_id: str, n: int, *, start_ms: int = 1_000) -> list[Event]:
    return [
        RunStatusChanged(run_id=run_id, timestamp_ms=start_ms + i, status="running")
        for i in range(n)
    ]


def big_events(run_id: str, n: int, *, tag: str, size: int = 1_500) -> list[Event]:
    """`n` events of about `size` bytes each, their output naming `tag` and the index."""
    return [
        NodeFinished(
            run_id=run_id,
            timestamp_ms=1_000 + i,
            node_id=f"{tag}-{i}",
            attempt=1,
            output=msgspec.Raw(msgspec.json.encode(f"{tag}-{i}:" + "x" * size)),
        )
        for i in range(n)
    ]


def a_lease(run_id: str = "r1", owner_id: str = "owner-a") -> Lease:
    return Lease(
        run_id=run_id,
        owner_id=owner_id,
        pid=123,
        host="h",
        acquired_at_ms=1_000,
        heartbeat_at_ms=1_000,
    )


Call = Callable[[], Awaitable[object]]


def side_table_writes(store: SQLiteEventStore) -> list[Call]:
    """One call of each side-table write; each must fail whole when the file can't be written."""
    return [
        lambda: store.put_lease(a_lease("r2")),
        lambda: store.renew_lease("r1", "owner-a", 2_000),
        lambda: store.release_lease("r1", "owner-a"),
        lambda: store.put_checkpoint("r1", 2, b"more"),
        lambda: store.delete_checkpoints("r1"),
        store.delete_checkpoints,
    ]


def tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def make_v1_database(path: Path, events: list[Event]) -> None:
    """A database as version 1 left it: its two tables, one run, no side tables."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.executescript(V1_DDL)
        conn.executemany(
            "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (e.run_id, seq, type(e).__name__, e.timestamp_ms, encode_event(e))
                for seq, e in enumerate(events, 1)
            ],
        )
        conn.execute(
            "INSERT INTO _smithers_runs VALUES (?, ?, ?, ?, ?, ?)",
            ("r1", "wf", "running", events[0].timestamp_ms, events[-1].timestamp_ms, len(events)),
        )


# ---------------------------------------------------------------------------- schema versions


async def test_a_new_database_has_every_table_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await (await SQLiteEventStore.open(path)).close()

    assert SCHEMA_VERSION == 3
    assert user_version(path) == SCHEMA_VERSION
    assert tables(path) >= {"_smithers_events", "_smithers_runs", *SIDE_TABLES}


async def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    old = status_events("r1", 3)
    make_v1_database(path, old)
    assert not tables(path) & SIDE_TABLES

    async with await SQLiteEventStore.open(path) as store:
        stored = await store.read("r1")
        assert [decode_event(s.type, s.data) for s in stored] == old
        assert [s.seq for s in stored] == [1, 2, 3]
        assert await store.get_run("r1") == RunRecord(
            run_id="r1",
            workflow_name="wf",
            status="running",
            created_at_ms=1_000,
            updated_at_ms=1_002,
            last_seq=3,
        )
        assert await store.append("r1", status_events("r1", 1), expected_seq=3) == 4
        await store.put_lease(a_lease())
        assert await store.renew_lease("r1", "owner-a", 2_000)
        await store.put_checkpoint("r1", 3, b"state@3")

    assert user_version(path) == SCHEMA_VERSION
    assert tables(path) >= SIDE_TABLES
    # Opening again is a no-op on the schema and keeps the side tables' rows.
    async with await SQLiteEventStore.open(path) as store:
        assert [s.seq for s in await store.read("r1")] == [1, 2, 3, 4]
        lease = await store.get_lease("r1")
        assert lease is not None
        assert lease.heartbeat_at_ms == 2_000
        assert await store.get_checkpoint("r1", at_or_before_seq=4) == (3, b"state@3")
    assert user_version(path) == SCHEMA_VERSION


async def test_dropped_side_tables_lose_nothing_and_come_back_on_open(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", status_events("r1", 2), expected_seq=0, workflow_name="wf")
        await store.put_lease(a_lease())
        await store.put_checkpoint("r1", 2, b"state")
        before = (await store.read_all(), await store.list_runs())
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("DROP TABLE _smithers_leases")
        conn.execute("DROP TABLE _smithers_checkpoints")

    async with await SQLiteEventStore.open(path) as store:
        assert (await store.read_all(), await store.list_runs()) == before
        assert await store.list_leases() == []
        assert await store.get_checkpoint("r1", at_or_before_seq=2) is None
        await store.put_checkpoint("r1", 2, b"rebuilt")
        assert await store.get_checkpoint("r1", at_or_before_seq=2) == (2, b"rebuilt")


async def test_open_never_lowers_a_newer_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await (await SQLiteEventStore.open(path)).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA user_version = 7")
        conn.execute("DROP TABLE _smithers_checkpoints")

    async with await SQLiteEventStore.open(path) as store:
        await store.put_checkpoint("r1", 1, b"x")

    assert user_version(path) == 7


async def test_opening_an_up_to_date_database_takes_no_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")  # another process mid-append
        try:
            async with await SQLiteEventStore.open(path, busy_timeout_ms=50) as store:
                assert len(await store.read("r1")) == 1
                assert await store.list_leases() == []
        finally:
            writer.execute("ROLLBACK")


async def test_side_tables_live_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    leases = [a_lease("r1", "owner-a"), a_lease("r2", "owner-b")]
    async with await SQLiteEventStore.open(path) as store:
        for lease in leases:
            await store.put_lease(lease)
        await store.put_checkpoint("r1", 4, b"\x00state\xff")

    async with await SQLiteEventStore.open(path, create=False) as store:
        assert await store.list_leases() == leases
        assert await store.get_checkpoint("r1", at_or_before_seq=9) == (4, b"\x00state\xff")


# ---------------------------------------------------------------------------- error translation


async def test_side_table_calls_translate_sqlite_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("DROP TABLE _smithers_leases")
            other.execute("DROP TABLE _smithers_checkpoints")

        for write in side_table_writes(store):
            with pytest.raises(DatabaseWriteError, match="no such table") as write_info:
                await write()
            assert write_info.value.code == "DB_WRITE_FAILED"
            assert write_info.value.details["dbPath"] == str(path)

        reads: list[Call] = [
            lambda: store.get_lease("r1"),
            store.list_leases,
            lambda: store.get_checkpoint("r1", at_or_before_seq=1),
        ]
        for read in reads:
            with pytest.raises(DatabaseQueryError, match="no such table") as read_info:
                await read()
            assert read_info.value.code == "DB_QUERY_FAILED"


async def test_a_side_table_write_on_a_locked_database_fails_after_the_lock_wait(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path, lock_timeout_ms=200) as store:
        await store.put_lease(a_lease())
        with closing(sqlite3.connect(path, isolation_level=None)) as locker:
            locker.execute("BEGIN EXCLUSIVE")
            try:
                began = time.monotonic()
                with pytest.raises(DatabaseWriteError, match="locked") as info:
                    await store.renew_lease("r1", "owner-a", 2_000)
                assert 0.2 <= time.monotonic() - began < 2.0
                assert info.value.code == "DB_WRITE_FAILED"
                assert info.value.details["lockTimeoutMs"] == 200
                assert "holderPid" not in info.value.details  # this very process holds it
                assert await store.get_lease("r1") == a_lease()  # WAL: reads go on
            finally:
                locker.execute("ROLLBACK")

        assert await store.renew_lease("r1", "owner-a", 2_000)


# ---------------------------------------------------------------------------- storage faults


@pytest.mark.parametrize("bad", [0, -5])
async def test_max_page_count_must_be_positive(tmp_path: Path, bad: int) -> None:
    with pytest.raises(ValueError, match="max_page_count"):
        await SQLiteEventStore.open(tmp_path / "s.db", max_page_count=bad)


async def test_a_quota_too_small_for_the_schema_fails_open_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with pytest.raises(DatabaseWriteError, match="full") as info:
        await SQLiteEventStore.open(path, max_page_count=2)
    assert info.value.code == "DB_WRITE_FAILED"
    assert str(path) in info.value.summary

    # Nothing half-made: without the quota the file opens as a complete, empty store.
    async with await SQLiteEventStore.open(path) as store:
        assert await store.read_all() == []
    assert tables(path) >= {"_smithers_events", "_smithers_runs", *SIDE_TABLES}


async def test_a_full_disk_fails_cleanly_and_keeps_whole_batches(tmp_path: Path) -> None:
    # `max_page_count` stands in for a full disk; it works as root, unlike chmod.
    path = tmp_path / "s.db"
    committed: dict[str, list[Event]] = {"a": [], "b": []}
    error: DatabaseWriteError | None = None
    async with await SQLiteEventStore.open(path, max_page_count=48) as store:
        for i in range(500):  # interleave two runs, batches of 1..5 events
            run_id = "ab"[i % 2]
            batch = big_events(run_id, 1 + i % 5, tag=f"batch{i}")
            try:
                await store.append(run_id, batch, expected_seq=len(committed[run_id]))
            except DatabaseWriteError as e:
                error = e
                break
            committed[run_id] += batch
        assert error is not None, "the quota was never reached"
        assert committed["a"], "the quota was hit before any batch fit"

        assert error.code == "DB_WRITE_FAILED"
        assert str(path) in str(error)
        assert error.details["dbPath"] == str(path)
        assert isinstance(error.__cause__, sqlite3.OperationalError)
        assert error.__cause__.sqlite_errorname == "SQLITE_FULL"

        # The log holds exactly the committed batches: contiguous seqs, no torn batch.
        for run_id, events in committed.items():
            stored = await store.read(run_id)
            assert [s.seq for s in stored] == list(range(1, len(events) + 1))
            assert [decode_event(s.type, s.data) for s in stored] == events
            record = await store.get_run(run_id)
            assert record is not None
            assert record.last_seq == len(events)
        assert len(await store.read_all()) == sum(map(len, committed.values()))

        # Still full: the same batch fails the same way, and side-table writes fail typed.
        with pytest.raises(DatabaseWriteError):
            await store.append(run_id, batch, expected_seq=len(committed[run_id]))
        with pytest.raises(DatabaseWriteError, match="full"):
            await store.put_checkpoint(run_id, 1, b"s" * 65_536)
        assert await store.get_checkpoint(run_id, at_or_before_seq=1) is None
        assert await store.last_seq(run_id) == len(committed[run_id])

    # Without the quota the same file takes the failed batch as if nothing happened.
    async with await SQLiteEventStore.open(path) as store:
        seq = await store.append(run_id, batch, expected_seq=len(committed[run_id]))
        assert seq == len(committed[run_id]) + len(batch)
        assert [decode_event(s.type, s.data) for s in await store.read(run_id)] == [
            *committed[run_id],
            *batch,
        ]


async def test_deleting_checkpoints_makes_room_under_a_quota(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path, max_page_count=40) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
        seq = 0
        with pytest.raises(DatabaseWriteError):  # noqa: PT012 - fill until full
            for seq in range(1, 100):
                await store.put_checkpoint("r1", seq, bytes(8_000))
        assert seq > 1
        with pytest.raises(DatabaseWriteError):
            await store.append("r1", big_events("r1", 3, tag="after"), expected_seq=1)

        assert await store.delete_checkpoints("r1") == seq - 1

        assert await store.append("r1", big_events("r1", 3, tag="after"), expected_seq=1) == 4


@NOT_ROOT
async def test_writes_to_a_read_only_file_fail_cleanly_and_reads_go_on(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
        await store.put_lease(a_lease())
        await store.put_checkpoint("r1", 1, b"state")
    path.chmod(0o444)
    try:
        # An up-to-date file opens without writing, so a reader can still use it.
        async with await SQLiteEventStore.open(path) as store:
            writes = [
                lambda: store.append("r1", status_events("r1", 1), expected_seq=1),
                *side_table_writes(store),
            ]
            for write in writes:
                with pytest.raises(DatabaseWriteError, match="readonly") as info:
                    await write()
                assert info.value.code == "DB_WRITE_FAILED"
                assert str(path) in info.value.summary

            assert await store.last_seq("r1") == 1
            assert await store.list_leases() == [a_lease()]
            assert await store.get_checkpoint("r1", at_or_before_seq=9) == (1, b"state")
    finally:
        path.chmod(0o644)


@NOT_ROOT
@pytest.mark.parametrize("version", ["current", "v1"])
async def test_a_read_only_file_in_a_read_only_directory_fails_open_cleanly(
    tmp_path: Path, version: str
) -> None:
    directory = tmp_path / "ro"
    path = directory / "s.db"
    if version == "v1":
        directory.mkdir()
        make_v1_database(path, status_events("r1", 1))
    else:
        async with await SQLiteEventStore.open(path) as store:
            await store.append("r1", status_events("r1", 1), expected_seq=0)
    before = path.read_bytes()
    path.chmod(0o444)
    directory.chmod(0o555)
    try:
        # WAL cannot create its -shm sidecar here: even reading needs a writable directory.
        with pytest.raises(DatabaseWriteError, match="readonly") as info:
            await SQLiteEventStore.open(path)
        assert info.value.code == "DB_WRITE_FAILED"
        assert info.value.details["dbPath"] == str(path)
    finally:
        directory.chmod(0o755)
        path.chmod(0o644)
    assert path.read_bytes() == before


async def test_connections_creating_one_database_at_once_all_open_it(tmp_path: Path) -> None:
    # Switching a new file to WAL takes a lock SQLite's busy handler does not wait for.
    import anyio

    for round_no in range(20):
        path = tmp_path / f"fresh{round_no}.db"
        stores: list[SQLiteEventStore] = []

        async def one(path: Path = path, stores: list[SQLiteEventStore] = stores) -> None:
            stores.append(await SQLiteEventStore.open(path))

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(one)
        for store in stores:
            await store.close()
        assert len(stores) == 6
