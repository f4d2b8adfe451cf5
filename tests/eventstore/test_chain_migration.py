"""Schema version 3: an older database gets its hash chain computed when opened."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

import pytest
from smithers.engine import check_chain
from smithers.eventstore import (
    ZERO_HASH,
    ChainBreak,
    SQLiteEventStore,
    chain_hash,
    encode_event,
    verify_chain,
)
from smithers.eventstore._sqlite import SCHEMA_VERSION
from smithers.eventstore.events import Event, RunForked, RunStatusChanged

if TYPE_CHECKING:
    from pathlib import Path

# The schema of version 2, as that release created it (copied, never edited).
V2_DDL = """
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
CREATE TABLE IF NOT EXISTS _smithers_leases (
    run_id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired_at_ms INTEGER NOT NULL,
    heartbeat_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS _smithers_checkpoints (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
PRAGMA user_version = 2;
"""


def status_events(run_id: str, n: int) -> list[Event]:
    return [
        RunStatusChanged(run_id=run_id, timestamp_ms=1_000 + i, status="running") for i in range(n)
    ]


def forked(run_id: str, parent: str, parent_seq: int) -> Event:
    return RunForked(
        run_id=run_id,
        timestamp_ms=2_000,
        parent_run_id=parent,
        parent_frame_no=1,
        parent_seq=parent_seq,
    )


# Runs named so the migration meets a fork before its parent ("a-" < "m-" < "z-").
OLD_RUNS: dict[str, list[Event]] = {
    "a-grandchild": [forked("a-grandchild", "m-child", 2), *status_events("a-grandchild", 1)],
    "m-child": [forked("m-child", "z-parent", 3), *status_events("m-child", 2)],
    "orphan": [forked("orphan", "deleted-run", 1), *status_events("orphan", 1)],
    "z-parent": status_events("z-parent", 4),
}


def make_v2_database(path: Path) -> None:
    """A database as version 2 left it: no hash column; rows in the order of `OLD_RUNS`."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.executescript(V2_DDL)
        conn.execute("PRAGMA journal_mode = WAL")
        for run_id, events in OLD_RUNS.items():
            conn.executemany(
                "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (run_id, seq, type(e).__name__, e.timestamp_ms, encode_event(e))
                    for seq, e in enumerate(events, 1)
                ],
            )
            conn.execute(
                "INSERT INTO _smithers_runs VALUES (?, 'wf', 'finished', 1000, 1000, ?)",
                (run_id, len(events)),
            )
        conn.execute("INSERT INTO _smithers_checkpoints VALUES ('z-parent', 4, X'01')")


def user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def positions(path: Path) -> list[tuple[int, str, int]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT position, run_id, seq FROM _smithers_events ORDER BY position"
        ).fetchall()


async def test_a_version_2_database_gets_its_chain_on_open(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    make_v2_database(path)
    before = positions(path)

    async with await SQLiteEventStore.open(path) as store:
        parent = await store.read_chained("z-parent")
        child = await store.read_chained("m-child")
        grandchild = await store.read_chained("a-grandchild")
        orphan = await store.read_chained("orphan")
        runs = await store.list_runs()
        checkpoint = await store.get_checkpoint("z-parent", at_or_before_seq=4)

    assert SCHEMA_VERSION == 3
    assert user_version(path) == 3
    assert positions(path) == before  # rows keep their global order
    assert verify_chain(parent) is None
    assert parent[0].hash == chain_hash(ZERO_HASH, 1, parent[0].type, parent[0].data)
    # A fork continues from its parent's row at parentSeq, down the line.
    assert verify_chain(child, prev=parent[2].hash) is None
    assert verify_chain(grandchild, prev=child[1].hash) is None
    # A fork whose parent is gone chains from zeros.
    assert verify_chain(orphan) is None
    assert {r.run_id for r in runs} == set(OLD_RUNS)
    assert checkpoint == (4, b"\x01")


async def test_the_migrated_chain_is_what_appends_would_have_made(tmp_path: Path) -> None:
    old = tmp_path / "v2.db"
    make_v2_database(old)
    async with await SQLiteEventStore.open(old) as store:
        migrated = {run_id: await store.read_chained(run_id) for run_id in OLD_RUNS}
        # Appending after the migration continues each chain.
        await store.append("z-parent", status_events("z-parent", 2), expected_seq=4)
        assert verify_chain(await store.read_chained("z-parent")) is None

    fresh = tmp_path / "new.db"
    async with await SQLiteEventStore.open(fresh) as store:
        for run_id in ("z-parent", "m-child", "a-grandchild", "orphan"):
            await store.append(run_id, OLD_RUNS[run_id], expected_seq=0)
        appended = {run_id: await store.read_chained(run_id) for run_id in OLD_RUNS}

    for run_id in OLD_RUNS:
        assert [r.hash for r in migrated[run_id]] == [r.hash for r in appended[run_id]]


async def test_opening_a_migrated_database_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    make_v2_database(path)
    await (await SQLiteEventStore.open(path)).close()
    with closing(sqlite3.connect(path)) as conn:
        first = conn.execute("SELECT position, hash FROM _smithers_events").fetchall()
    await (await SQLiteEventStore.open(path)).close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT position, hash FROM _smithers_events").fetchall() == first


async def test_a_version_2_writer_cannot_add_unchained_rows(tmp_path: Path) -> None:
    # What smithers of version 2 does on append: an INSERT without the hash column.
    path = tmp_path / "v2.db"
    make_v2_database(path)
    await (await SQLiteEventStore.open(path)).close()
    with (
        closing(sqlite3.connect(path, isolation_level=None)) as conn,
        pytest.raises(sqlite3.IntegrityError, match="NOT NULL constraint failed"),
    ):
        conn.execute(
            "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload) "
            "VALUES ('z-parent', 5, 'RunStatusChanged', 1, X'7B7D')"
        )
    # ...while its reads (named columns) still work.
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT position, seq, type, timestamp_ms, payload FROM _smithers_events "
            "WHERE run_id = 'z-parent' ORDER BY seq"
        ).fetchall()
    assert [r[1] for r in rows] == [1, 2, 3, 4]


async def test_a_version_2_database_opened_read_only_has_no_chain_yet(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    make_v2_database(path)
    async with await SQLiteEventStore.open(path, read_only=True) as store:
        rows = await store.read_chained("z-parent")
    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert {r.hash for r in rows} == {b""}
    assert verify_chain(rows) == ChainBreak(seq=1, reason="payload")
    assert user_version(path) == 2  # nothing written


async def test_verify_says_a_read_only_version_2_log_has_no_chain_yet(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    make_v2_database(path)
    async with await SQLiteEventStore.open(path, read_only=True) as store:
        found = await check_chain(store, "z-parent")
    assert (found.status, found.ok, found.rows_checked, found.seq) == ("absent", True, 4, None)
    async with await SQLiteEventStore.open(path) as store:  # writable: the chain is computed
        found = await check_chain(store, "m-child")
    assert (found.status, found.parent_run_id, found.parent_seq) == ("ok", "z-parent", 3)
