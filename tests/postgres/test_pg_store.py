"""What the PostgreSQL store adds to the shared contract (tests/eventstore/test_contract.py).

Concurrency between separate connections (two writers racing, a tailer racing
writers), the chain and bulk writes byte-identical to SQLite's, schema versioning,
and URLs: a URL's password is never in a message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import psycopg
import pytest
from smithers.eventstore import (
    BulkDeletion,
    BulkRun,
    DatabaseQueryError,
    MigrationRequiredError,
    PostgresEventStore,
    RunAlreadyExistsError,
    SeqConflictError,
    SmithersError,
    SQLiteEventStore,
    is_postgres_url,
    open_store,
    redact_url,
    resolve_db,
    resolve_db_path,
    verify_chain,
)
from smithers.eventstore.events import Event, RunForked, RunStatusChanged

if TYPE_CHECKING:
    from pathlib import Path


def status_events(run_id: str, n: int, *, start_ms: int = 1_000) -> list[Event]:
    return [
        RunStatusChanged(run_id=run_id, timestamp_ms=start_ms + i, status="running")
        for i in range(n)
    ]


async def test_two_connections_racing_for_one_seq_one_wins(pg_url: str) -> None:
    async with (
        await PostgresEventStore.open(pg_url) as a,
        await PostgresEventStore.open(pg_url) as b,
    ):
        await a.append("r1", status_events("r1", 2), expected_seq=0)
        outcomes: list[object] = []

        async def write(store: PostgresEventStore, ms: int) -> None:
            try:
                outcomes.append(
                    await store.append("r1", status_events("r1", 3, start_ms=ms), expected_seq=2)
                )
            except SeqConflictError as e:
                outcomes.append(e)

        async with anyio.create_task_group() as tg:
            tg.start_soon(write, a, 5_000)
            tg.start_soon(write, b, 9_000)
        assert sorted(o for o in outcomes if isinstance(o, int)) == [5]
        [lost] = [o for o in outcomes if isinstance(o, SeqConflictError)]
        assert lost.code == "RUN_RESUME_CLAIM_LOST"
        assert (lost.expected_seq, lost.actual_seq) == (2, 5)
        rows = await a.read_chained("r1")
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert verify_chain(rows) is None  # the loser's rows were not kept


async def test_two_connections_creating_one_run_one_gets_run_already_exists(pg_url: str) -> None:
    async with (
        await PostgresEventStore.open(pg_url) as a,
        await PostgresEventStore.open(pg_url) as b,
    ):
        errors: list[Exception] = []

        async def create(store: PostgresEventStore) -> None:
            try:
                await store.append("r1", status_events("r1", 2), expected_seq=0)
            except RunAlreadyExistsError as e:
                errors.append(e)

        async with anyio.create_task_group() as tg:
            for store in (a, b, a, b):
                tg.start_soon(create, store)
        assert len(errors) == 3
        assert {e.code for e in errors} == {"RUN_ALREADY_EXISTS"}
        assert [r.seq for r in await b.read("r1")] == [1, 2]


async def test_a_position_taken_by_an_open_transaction_is_never_skipped(pg_url: str) -> None:
    # A writer's transaction holds position p; a later append must not commit a
    # position above p that a tailer could read before p commits.
    async with (
        await PostgresEventStore.open(pg_url) as store,
        await PostgresEventStore.open(pg_url) as tailer,
    ):
        await store.append("seed", status_events("seed", 1), expected_seq=0)
        raw = await psycopg.AsyncConnection.connect(pg_url, autocommit=False)
        try:
            await raw.execute(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '._smithers_events'))"
            )
            await raw.execute(
                "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload, hash) "
                "VALUES ('slow', 1, 'RunStatusChanged', 1, %s, %s)",
                (b"{}", bytes(32)),
            )
            done = anyio.Event()

            async def append_other() -> None:
                await store.append("fast", status_events("fast", 1), expected_seq=0)
                done.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(append_other)
                await anyio.sleep(0.3)
                assert not done.is_set()  # waits for the open transaction to end
                assert [r.run_id for r in await tailer.read_all(after_position=0)] == ["seed"]
                await raw.commit()
        finally:
            await raw.close()
        rows = await tailer.read_all(after_position=0)
        assert [r.run_id for r in rows] == ["seed", "slow", "fast"]
        assert rows[1].position < rows[2].position


async def test_a_tailer_racing_writers_sees_every_row_once_in_order(pg_url: str) -> None:
    writers = [await PostgresEventStore.open(pg_url) for _ in range(3)]
    tailer = await PostgresEventStore.open(pg_url)
    seen: list[int] = []
    try:

        async def write(i: int, store: PostgresEventStore) -> None:
            seq = 0
            for _ in range(20):
                seq = await store.append(f"w{i}", status_events(f"w{i}", 2), expected_seq=seq)

        async def tail(stop: anyio.Event) -> None:
            after = 0
            while True:
                finished = stop.is_set()
                for row in await tailer.read_all(after_position=after):
                    seen.append(row.position)
                    after = row.position
                if finished:
                    return
                await anyio.sleep(0)

        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(tail, stop)
            async with anyio.create_task_group() as wg:
                for i, store in enumerate(writers):
                    wg.start_soon(write, i, store)
            stop.set()
        everything = [r.position for r in await tailer.read_all()]
        assert len(everything) == 3 * 20 * 2
        assert seen == everything  # nothing skipped, nothing twice, in order
    finally:
        for s in (*writers, tailer):
            await s.close()


async def test_hashes_match_the_sqlite_stores_byte_for_byte(pg_url: str, tmp_path: Path) -> None:
    parent = status_events("parent", 4)
    fork = RunForked(
        run_id="child", timestamp_ms=5_000, parent_run_id="parent", parent_frame_no=1, parent_seq=3
    )
    child = [fork, *status_events("child", 2, start_ms=6_000)]
    hashes: list[list[bytes]] = []
    async with (
        await SQLiteEventStore.open(tmp_path / "s.db") as sqlite,
        await PostgresEventStore.open(pg_url) as pg,
    ):
        for store in (sqlite, pg):
            await store.append("parent", parent[:2], expected_seq=0)
            await store.append("parent", parent[2:], expected_seq=2)
            await store.append("child", child, expected_seq=0)
            hashes.append(
                [r.hash for run in ("parent", "child") for r in await store.read_chained(run)]
            )
    assert hashes[0] == hashes[1]
    assert len(hashes[1]) == 7


async def test_import_and_gc_as_on_sqlite(pg_url: str, tmp_path: Path) -> None:
    async with await SQLiteEventStore.open(tmp_path / "s.db") as sqlite:
        await sqlite.append("r1", status_events("r1", 3), expected_seq=0, status="finished")
        source = await sqlite.read_chained("r1")
    bulk = BulkRun(
        run_id="r1",
        rows=tuple((r.seq, r.type, r.timestamp_ms, r.data) for r in source),
        status="finished",
        workflow_name="wf",
    )
    async with await PostgresEventStore.open(pg_url) as pg:
        assert await pg.import_runs([bulk]) == ["imported"]
        assert await pg.import_runs([bulk]) == ["identical"]
        assert [r.hash for r in await pg.read_chained("r1")] == [r.hash for r in source]
        record = await pg.get_run("r1")
        assert record is not None
        assert (record.status, record.last_seq) == ("finished", 3)
        other = BulkRun(run_id="r1", rows=bulk.rows[:1] + bulk.rows[2:], status="finished")
        with pytest.raises(RunAlreadyExistsError):
            await pg.import_runs([other])

        audit = RunStatusChanged(run_id="_audit", timestamp_ms=9_000, status="running")
        with pytest.raises(SeqConflictError):  # grew since chosen: nothing deleted
            await pg.delete_runs(
                [BulkDeletion(run_id="r1", expected_last_seq=2)],
                audit_stream="_audit",
                audit_event=audit,
            )
        assert len(await pg.read("r1")) == 3
        deleted = await pg.delete_runs(
            [BulkDeletion(run_id="r1", keep_seqs=(1,), expected_last_seq=3)],
            audit_stream="_audit",
            audit_event=audit,
        )
        assert deleted == 2
        assert [r.seq for r in await pg.read("r1")] == [1]
        kept = await pg.get_run("r1")
        assert kept is not None
        assert kept.status == "collected"
        assert verify_chain(await pg.read_chained("_audit")) is None
        assert [
            r.run_id for r in await pg.read_types(["RunStatusChanged"], run_ids=["_audit"])
        ] == ["_audit"]


async def _set_version(url: str, version: int | None) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DELETE FROM _smithers_meta")
        if version is not None:
            await conn.execute("INSERT INTO _smithers_meta (version) VALUES (%s)", (version,))


@pytest.mark.parametrize("version", [0, None])
async def test_an_older_schema_needs_a_migration(pg_url: str, version: int | None) -> None:
    async with await PostgresEventStore.open(pg_url) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
    await _set_version(pg_url, version)
    with pytest.raises(MigrationRequiredError) as caught:
        await PostgresEventStore.open(pg_url)
    error = caught.value
    assert error.code == "SMITHERS_MIGRATION_REQUIRED"
    assert error.details["schemaVersion"] == 0
    assert error.details["runCount"] == 1
    assert error.details["resolvedBackend"] == "postgres"
    assert "smithers migrate --to" in str(error.hint)


async def test_reading_a_database_without_smithers_tables_is_db_not_found(pg_url: str) -> None:
    with pytest.raises(SmithersError) as caught:
        await open_store(pg_url, create=False)
    assert caught.value.code == "CLI_DB_NOT_FOUND"
    async with await open_store(pg_url) as store:  # type: ignore[attr-defined]
        assert isinstance(store, PostgresEventStore)
        assert await store.list_runs() == []


async def test_a_read_only_store_refuses_writes(pg_url: str) -> None:
    async with await PostgresEventStore.open(pg_url) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
    async with await PostgresEventStore.open(pg_url, read_only=True) as ro:
        assert len(await ro.read("r1")) == 1
        with pytest.raises(SmithersError) as caught:
            await ro.append("r1", status_events("r1", 1), expected_seq=1)
        assert caught.value.code == "DB_WRITE_FAILED"


async def test_an_unreachable_server_is_a_query_error_without_the_password() -> None:
    url = "postgresql://someone:s3cretpw@127.0.0.1:1/nowhere?connect_timeout=2"
    with pytest.raises(DatabaseQueryError) as caught:
        await PostgresEventStore.open(url)
    error: Any = caught.value
    assert error.code == "DB_QUERY_FAILED"
    assert "s3cretpw" not in str(error)
    assert "s3cretpw" not in str(error.details)
    assert "someone:***@127.0.0.1:1" in str(error)


def test_urls_are_told_from_paths_and_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMITHERS_DB", raising=False)
    assert is_postgres_url("postgresql://h/db")
    assert is_postgres_url("POSTGRES://h/db")
    assert not is_postgres_url("runs/postgresql.db")
    assert not is_postgres_url(None)
    assert redact_url("postgresql://u:pw@h:5432/db?sslmode=require") == (
        "postgresql://u:***@h:5432/db?sslmode=require"
    )
    assert "pw" not in redact_url("postgresql://h/db?user=u&password=pw")
    assert resolve_db("postgres://h/db") == "postgres://h/db"
    monkeypatch.setenv("SMITHERS_DB", "postgresql://u:pw@h/db")
    assert resolve_db() == "postgresql://u:pw@h/db"
    with pytest.raises(SmithersError) as caught:
        resolve_db_path()  # a caller that needs a file says so, password hidden
    assert caught.value.code == "INVALID_INPUT"
    assert "pw" not in str(caught.value)


async def test_a_lost_connection_is_replaced_on_the_next_call(pg_url: str) -> None:
    async with await PostgresEventStore.open(pg_url) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
        pid = store._conn.info.backend_pid  # type: ignore[union-attr]  # the server's end
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(SmithersError):  # the call that finds it gone fails cleanly
            await store.read("r1")
        assert await store.append("r1", status_events("r1", 1), expected_seq=1) == 2
        assert [r.seq for r in await store.read("r1")] == [1, 2]


async def test_a_call_cancelled_mid_transaction_leaves_the_store_usable(pg_url: str) -> None:
    async with await PostgresEventStore.open(pg_url) as store:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=False) as blocker:
            # Holding the append lock makes the store's append wait inside its transaction.
            await blocker.execute(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '._smithers_events'))"
            )
            with anyio.move_on_after(0.3) as scope:
                await store.append("r1", status_events("r1", 2), expected_seq=0)
            assert scope.cancelled_caught
            await blocker.rollback()
        assert await store.read("r1") == []  # nothing of the cancelled batch
        assert await store.append("r1", status_events("r1", 2), expected_seq=0) == 2


@pytest.mark.parametrize("db", ["mysql://h/db", "sqlite:///tmp/x.db", "file://x"])
def test_a_url_of_another_scheme_is_refused_not_taken_for_a_file(
    db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for resolve in (resolve_db, resolve_db_path):
        with pytest.raises(SmithersError) as caught:
            resolve(db)
        assert caught.value.code == "INVALID_INPUT"
    assert list(tmp_path.iterdir()) == []
