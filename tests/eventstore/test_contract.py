"""The `EventStore` contract, run against every backend (eventsourcing's recorder suite)."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from typing import TYPE_CHECKING

import anyio
import msgspec
import pytest
from smithers.eventstore import (
    DatabaseQueryError,
    DatabaseWriteError,
    EventStore,
    Lease,
    MemoryEventStore,
    PostgresEventStore,
    RunAlreadyExistsError,
    SeqConflictError,
    SQLiteEventStore,
    StoredEvent,
    chain_hash,
    decode_event,
    encode_event,
    verify_chain,
)
from smithers.eventstore.events import (
    ErrorInfo,
    Event,
    NodeFailed,
    NodeFinished,
    NodePending,
    NodeStarted,
    RunStarted,
    RunStatusChanged,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from pathlib import Path

# ---------------------------------------------------------------------------- helpers


def status_events(run_id: str, n: int, *, start_ms: int = 1_000) -> list[Event]:
    return [
        RunStatusChanged(run_id=run_id, timestamp_ms=start_ms + i, status="running")
        for i in range(n)
    ]


def node_events(run_id: str, node_id: str, *, at_ms: int = 2_000) -> list[Event]:
    return [
        NodePending(run_id=run_id, timestamp_ms=at_ms, node_id=node_id, label="a label"),
        NodeStarted(run_id=run_id, timestamp_ms=at_ms + 1, node_id=node_id, attempt=1),
        NodeFinished(
            run_id=run_id,
            timestamp_ms=at_ms + 2,
            node_id=node_id,
            attempt=1,
            output=msgspec.Raw(b'{"ok":true}'),
        ),
    ]


def decoded(stored: Sequence[StoredEvent]) -> list[Event]:
    """Decode stored events as a reader does: unknown types are skipped."""
    return [e for s in stored if (e := decode_event(s.type, s.data)) is not None]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    backend: EventStore
    if request.param == "memory":
        backend = MemoryEventStore()
    elif request.param == "postgres":
        # A fresh schema per test (tests/conftest.py `pg_url`); skipped without a server.
        backend = await PostgresEventStore.open(request.getfixturevalue("pg_url"))
    else:
        backend = await SQLiteEventStore.open(tmp_path / "s.db")
    try:
        yield backend
    finally:
        await backend.close()


# ---------------------------------------------------------------------------- append and read


async def test_append_returns_the_new_last_seq(store: EventStore) -> None:
    assert await store.append("r1", status_events("r1", 3), expected_seq=0) == 3
    assert await store.append("r1", node_events("r1", "a"), expected_seq=3) == 6
    assert await store.last_seq("r1") == 6


async def test_last_seq_of_an_unknown_run_is_zero(store: EventStore) -> None:
    assert await store.last_seq("nope") == 0


async def test_read_returns_the_run_events_in_seq_order(store: EventStore) -> None:
    first = status_events("r1", 2)
    second = node_events("r1", "a")
    await store.append("r1", first, expected_seq=0)
    await store.append("r2", status_events("r2", 1), expected_seq=0)
    await store.append("r1", second, expected_seq=2)

    stored = await store.read("r1")

    assert [s.seq for s in stored] == [1, 2, 3, 4, 5]
    assert {s.run_id for s in stored} == {"r1"}
    assert [s.type for s in stored] == [type(e).__name__ for e in first + second]
    assert [s.timestamp_ms for s in stored] == [e.timestamp_ms for e in first + second]
    assert [s.data for s in stored] == [encode_event(e) for e in first + second]
    assert decoded(stored) == first + second


async def test_read_of_an_unknown_run_is_empty(store: EventStore) -> None:
    await store.append("r1", status_events("r1", 1), expected_seq=0)
    assert await store.read("other") == []


@pytest.mark.parametrize(
    ("after_seq", "upto_seq", "expected"),
    [
        (0, None, [1, 2, 3, 4, 5]),
        (2, None, [3, 4, 5]),
        (0, 3, [1, 2, 3]),
        (1, 4, [2, 3, 4]),
        (4, 5, [5]),
        (0, 99, [1, 2, 3, 4, 5]),
        (5, None, []),
        (9, None, []),
        (3, 3, []),
        (4, 2, []),
        (0, 0, []),
    ],
)
async def test_read_a_seq_range(
    store: EventStore, after_seq: int, upto_seq: int | None, expected: list[int]
) -> None:
    await store.append("r1", status_events("r1", 5), expected_seq=0)
    stored = await store.read("r1", after_seq=after_seq, upto_seq=upto_seq)
    assert [s.seq for s in stored] == expected


async def test_seqs_are_contiguous_from_one_across_batches(store: EventStore) -> None:
    last = 0
    for size in (1, 3, 2, 1, 4):
        last = await store.append("r1", status_events("r1", size), expected_seq=last)
    assert [s.seq for s in await store.read("r1")] == list(range(1, 12))


async def test_empty_append_to_a_new_run_writes_nothing(store: EventStore) -> None:
    assert await store.append("r1", [], expected_seq=0) == 0
    assert await store.read("r1") == []
    assert await store.read_all() == []
    assert await store.get_run("r1") is None
    assert await store.list_runs() == []


async def test_empty_append_to_an_existing_run_keeps_its_seq(store: EventStore) -> None:
    await store.append("r1", status_events("r1", 2), expected_seq=0)
    assert await store.append("r1", [], expected_seq=2) == 2
    assert await store.last_seq("r1") == 2
    assert len(await store.read_all()) == 2


# ---------------------------------------------------------------------------- concurrency control


@pytest.mark.parametrize("expected_seq", [1, 3, 7])
async def test_a_stale_expected_seq_conflicts_and_writes_nothing(
    store: EventStore, expected_seq: int
) -> None:
    await store.append("r1", status_events("r1", 2), expected_seq=0)
    before = await store.get_run("r1")

    with pytest.raises(SeqConflictError, match="is at seq 2") as info:
        await store.append("r1", status_events("r1", 3), expected_seq=expected_seq)

    err = info.value
    assert type(err) is SeqConflictError
    assert (err.run_id, err.expected_seq, err.actual_seq) == ("r1", expected_seq, 2)
    assert err.details == {"runId": "r1", "expectedSeq": expected_seq, "actualSeq": 2}
    assert await store.last_seq("r1") == 2
    assert len(await store.read("r1")) == 2
    assert len(await store.read_all()) == 2
    assert await store.get_run("r1") == before


async def test_expected_seq_zero_on_an_existing_run_raises_run_already_exists(
    store: EventStore,
) -> None:
    await store.append("r1", status_events("r1", 3), expected_seq=0)

    with pytest.raises(RunAlreadyExistsError, match="already exists") as info:
        await store.append("r1", status_events("r1", 1), expected_seq=0, workflow_name="other")

    assert info.value.code == "RUN_ALREADY_EXISTS"
    assert isinstance(info.value, SeqConflictError)
    assert info.value.actual_seq == 3
    assert await store.last_seq("r1") == 3
    record = await store.get_run("r1")
    assert record is not None
    assert record.workflow_name == ""


async def test_a_batch_that_cannot_be_encoded_writes_nothing(store: EventStore) -> None:
    await store.append("r1", status_events("r1", 1), expected_seq=0)
    # Structs do not validate on construction; the encoder rejects the object.
    bad = RunStatusChanged(run_id="r1", timestamp_ms=5, status=object())  # type: ignore[arg-type]

    with pytest.raises(TypeError):
        await store.append("r1", [*status_events("r1", 2), bad], expected_seq=1)

    assert await store.last_seq("r1") == 1
    assert len(await store.read_all()) == 1


# ---------------------------------------------------------------------------- global order


async def test_read_all_keeps_the_global_order_of_interleaved_runs(store: EventStore) -> None:
    appended: list[tuple[str, int]] = []
    seqs: dict[str, int] = {}
    for run_id, n in [("a", 2), ("b", 1), ("a", 1), ("c", 3), ("b", 2), ("a", 1)]:
        start = seqs.get(run_id, 0)
        seqs[run_id] = await store.append(run_id, status_events(run_id, n), expected_seq=start)
        appended += [(run_id, seq) for seq in range(start + 1, seqs[run_id] + 1)]

    everything = await store.read_all()

    assert [(s.run_id, s.seq) for s in everything] == appended
    positions = [s.position for s in everything]
    assert positions[0] == 1
    assert positions == sorted(set(positions))


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
async def test_read_all_pages_from_a_position(store: EventStore, limit: int) -> None:
    await store.append("a", status_events("a", 3), expected_seq=0)
    await store.append("b", status_events("b", 2), expected_seq=0)
    await store.append("a", status_events("a", 2), expected_seq=3)
    everything = await store.read_all()

    pages: list[StoredEvent] = []
    position = 0
    while page := await store.read_all(after_position=position, limit=limit):
        assert len(page) <= limit
        pages += page
        position = page[-1].position

    assert pages == everything
    assert await store.read_all(after_position=everything[-1].position) == []
    assert await store.read_all(after_position=everything[2].position) == everything[3:]


# ---------------------------------------------------------------------------- runs index


async def test_list_runs_is_newest_first_with_the_append_metadata(store: EventStore) -> None:
    for run_id, start_ms, name in [("old", 1_000, "wf-a"), ("new", 3_000, "wf-b")]:
        await store.append(
            run_id,
            status_events(run_id, 2, start_ms=start_ms),
            expected_seq=0,
            status="running",
            workflow_name=name,
        )
    await store.append(
        "mid", status_events("mid", 1, start_ms=2_000), expected_seq=0, workflow_name="wf-c"
    )

    runs = await store.list_runs()

    assert [r.run_id for r in runs] == ["new", "mid", "old"]
    assert [r.workflow_name for r in runs] == ["wf-b", "wf-c", "wf-a"]
    assert [r.status for r in runs] == ["running", "running", "running"]
    assert [r.created_at_ms for r in runs] == [3_000, 2_000, 1_000]
    assert [r.last_seq for r in runs] == [2, 1, 2]
    assert [r.run_id for r in await store.list_runs(limit=2)] == ["new", "mid"]


async def test_list_runs_filters_by_status_in_the_database(store: EventStore) -> None:
    for run_id, start_ms, status in [("a", 1_000, "queued"), ("b", 2_000, "running")]:
        await store.append(
            run_id, status_events(run_id, 1, start_ms=start_ms), expected_seq=0, status=status
        )
    await store.append("c", status_events("c", 1, start_ms=3_000), expected_seq=0)
    finished = status_events("c", 1, start_ms=4_000)
    await store.append("c", finished, expected_seq=1, status="finished")

    assert [r.run_id for r in await store.list_runs(statuses=["running", "queued"])] == ["b", "a"]
    assert [r.run_id for r in await store.list_runs(statuses={"finished"})] == ["c"]
    assert [r.run_id for r in await store.list_runs(statuses=("queued", "running"), limit=1)] == [
        "b"
    ]
    assert await store.list_runs(statuses=[]) == []
    assert await store.list_runs(statuses=["waiting-event"]) == []


async def test_a_later_append_updates_the_run_record(store: EventStore) -> None:
    await store.append(
        "r1", status_events("r1", 2, start_ms=1_000), expected_seq=0, workflow_name="wf"
    )
    failed = NodeFailed(
        run_id="r1",
        timestamp_ms=5_000,
        node_id="a",
        attempt=1,
        error=ErrorInfo(name="ValueError", message="boom", retryable=False),
    )
    await store.append("r1", [failed], expected_seq=2, status="failed")

    record = await store.get_run("r1")

    assert record is not None
    assert record.run_id == "r1"
    assert record.workflow_name == "wf"
    assert record.status == "failed"
    assert record.created_at_ms == 1_000
    assert record.updated_at_ms == 5_000
    assert record.last_seq == 3


async def test_a_new_run_defaults_to_running(store: EventStore) -> None:
    await store.append("r1", status_events("r1", 1), expected_seq=0)
    record = await store.get_run("r1")
    assert record is not None
    assert (record.status, record.workflow_name) == ("running", "")


async def test_get_run_of_an_unknown_run_is_none(store: EventStore) -> None:
    await store.append("r1", status_events("r1", 1), expected_seq=0)
    assert await store.get_run("nope") is None


# ---------------------------------------------------------------------------- leases


def lease(run_id: str, owner_id: str, *, at_ms: int = 10_000, pid: int = 4242) -> Lease:
    return Lease(
        run_id=run_id,
        owner_id=owner_id,
        pid=pid,
        host="worker-1",
        acquired_at_ms=at_ms,
        heartbeat_at_ms=at_ms,
    )


def test_a_lease_encodes_with_camel_case_fields() -> None:
    assert msgspec.json.decode(msgspec.json.encode(lease("r1", "o1"))) == {
        "runId": "r1",
        "ownerId": "o1",
        "pid": 4242,
        "host": "worker-1",
        "acquiredAtMs": 10_000,
        "heartbeatAtMs": 10_000,
    }


async def test_no_leases_at_first(store: EventStore) -> None:
    assert await store.get_lease("r1") is None
    assert await store.list_leases() == []


async def test_put_lease_then_get_it(store: EventStore) -> None:
    mine = lease("r1", "owner-a")
    await store.put_lease(mine)
    assert await store.get_lease("r1") == mine
    assert await store.get_lease("r2") is None
    assert await store.list_leases() == [mine]


async def test_put_lease_replaces_the_previous_owner(store: EventStore) -> None:
    await store.put_lease(lease("r1", "owner-a", at_ms=1_000))
    theirs = lease("r1", "owner-b", at_ms=2_000, pid=7)

    await store.put_lease(theirs)

    assert await store.get_lease("r1") == theirs
    assert await store.list_leases() == [theirs]


async def test_list_leases_is_ordered_by_run_id(store: EventStore) -> None:
    for run_id in ["r2", "r3", "r1"]:
        await store.put_lease(lease(run_id, f"owner-{run_id}"))
    assert [x.run_id for x in await store.list_leases()] == ["r1", "r2", "r3"]


async def test_the_owner_renews_its_lease(store: EventStore) -> None:
    await store.put_lease(lease("r1", "owner-a", at_ms=1_000))

    assert await store.renew_lease("r1", "owner-a", 1_500) is True

    renewed = await store.get_lease("r1")
    assert renewed == msgspec.structs.replace(
        lease("r1", "owner-a", at_ms=1_000), heartbeat_at_ms=1_500
    )


async def test_renewing_a_lease_someone_else_took_fails_and_changes_nothing(
    store: EventStore,
) -> None:
    theirs = lease("r1", "owner-b", at_ms=2_000)
    await store.put_lease(lease("r1", "owner-a", at_ms=1_000))
    await store.put_lease(theirs)

    assert await store.renew_lease("r1", "owner-a", 3_000) is False

    assert await store.get_lease("r1") == theirs


async def test_renewing_a_missing_lease_fails_and_creates_nothing(store: EventStore) -> None:
    await store.put_lease(lease("r2", "owner-a"))
    assert await store.renew_lease("r1", "owner-a", 3_000) is False
    assert await store.get_lease("r1") is None
    assert [x.run_id for x in await store.list_leases()] == ["r2"]


async def test_the_owner_releases_its_lease(store: EventStore) -> None:
    await store.put_lease(lease("r1", "owner-a"))
    await store.put_lease(lease("r2", "owner-a"))

    await store.release_lease("r1", "owner-a")

    assert await store.get_lease("r1") is None
    assert [x.run_id for x in await store.list_leases()] == ["r2"]
    assert await store.renew_lease("r1", "owner-a", 20_000) is False


async def test_releasing_another_owners_lease_leaves_it(store: EventStore) -> None:
    theirs = lease("r1", "owner-b")
    await store.put_lease(theirs)

    await store.release_lease("r1", "owner-a")
    await store.release_lease("missing", "owner-a")

    assert await store.list_leases() == [theirs]


async def test_leases_are_not_in_the_log(store: EventStore) -> None:
    await store.append("r1", status_events("r1", 2), expected_seq=0, workflow_name="wf")
    before = (await store.read_all(), await store.list_runs())

    await store.put_lease(lease("r1", "owner-a"))
    await store.renew_lease("r1", "owner-a", 20_000)
    await store.release_lease("r1", "owner-a")
    await store.put_lease(lease("r2", "owner-a"))

    assert (await store.read_all(), await store.list_runs()) == before
    assert await store.get_run("r2") is None


# ---------------------------------------------------------------------------- checkpoints


async def test_no_checkpoint_at_first(store: EventStore) -> None:
    assert await store.get_checkpoint("r1", at_or_before_seq=100) is None
    assert await store.delete_checkpoints() == 0
    assert await store.delete_checkpoints("r1") == 0


@pytest.mark.parametrize(
    ("at_or_before_seq", "expected"),
    [(0, None), (4, None), (5, 5), (9, 5), (10, 10), (19, 10), (20, 20), (1_000, 20)],
)
async def test_get_checkpoint_returns_the_latest_at_or_before_a_seq(
    store: EventStore, at_or_before_seq: int, expected: int | None
) -> None:
    for seq in (10, 5, 20):  # out of order: the lookup must not rely on insertion order
        await store.put_checkpoint("r1", seq, f"state@{seq}".encode())
    await store.put_checkpoint("r0", 7, b"other run")
    await store.put_checkpoint("r2", 3, b"other run")

    found = await store.get_checkpoint("r1", at_or_before_seq=at_or_before_seq)

    assert found == (None if expected is None else (expected, f"state@{expected}".encode()))


@pytest.mark.parametrize(
    "data", [b"", b"\x00\xff\x00", bytes(range(256)) * 64], ids=["empty", "binary", "16KiB"]
)
async def test_checkpoint_data_round_trips_byte_for_byte(store: EventStore, data: bytes) -> None:
    await store.put_checkpoint("r1", 3, data)
    found = await store.get_checkpoint("r1", at_or_before_seq=3)
    assert found is not None
    assert found == (3, data)
    assert type(found[1]) is bytes


async def test_put_checkpoint_replaces_one_at_the_same_seq(store: EventStore) -> None:
    await store.put_checkpoint("r1", 5, b"old")
    await store.put_checkpoint("r1", 5, b"new")
    assert await store.get_checkpoint("r1", at_or_before_seq=5) == (5, b"new")
    assert await store.delete_checkpoints("r1") == 1


async def test_delete_checkpoints_of_one_run(store: EventStore) -> None:
    for run_id, seq in [("r1", 5), ("r1", 10), ("r2", 5)]:
        await store.put_checkpoint(run_id, seq, b"x")

    assert await store.delete_checkpoints("r1") == 2

    assert await store.get_checkpoint("r1", at_or_before_seq=10) is None
    assert await store.get_checkpoint("r2", at_or_before_seq=10) == (5, b"x")
    assert await store.delete_checkpoints("r1") == 0


async def test_delete_checkpoints_of_every_run(store: EventStore) -> None:
    for run_id, seq in [("r1", 5), ("r1", 10), ("r2", 5)]:
        await store.put_checkpoint(run_id, seq, b"x")

    assert await store.delete_checkpoints() == 3

    for run_id in ("r1", "r2"):
        assert await store.get_checkpoint(run_id, at_or_before_seq=10) is None
    assert await store.delete_checkpoints() == 0


async def test_checkpoints_are_not_in_the_log(store: EventStore) -> None:
    await store.append("r1", status_events("r1", 3), expected_seq=0)
    before = (await store.read_all(), await store.list_runs())

    await store.put_checkpoint("r1", 3, b"state")
    await store.put_checkpoint("r9", 1, b"a run with no events")
    await store.delete_checkpoints("r1")

    assert (await store.read_all(), await store.list_runs()) == before
    assert await store.last_seq("r9") == 0


# ---------------------------------------------------------------------------- unknown types


def test_decode_event_skips_an_unknown_type() -> None:
    future = StoredEvent(
        position=1,
        run_id="r1",
        seq=1,
        type="EventFromTheFuture",
        timestamp_ms=1,
        data=b'{"type":"EventFromTheFuture","runId":"r1","timestampMs":1,"newField":[1]}',
    )
    assert decode_event(future.type, future.data) is None
    assert decoded([future]) == []


async def test_readers_skip_rows_of_an_unknown_type(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    known = status_events("r1", 2)
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", known[:1], expected_seq=0)
        # A newer smithers's row, chained as every writer chains its rows.
        payload = b'{"type":"EventFromTheFuture"}'
        row_hash = chain_hash(
            (await store.read_chained("r1"))[0].hash, 2, "EventFromTheFuture", payload
        )
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute(
                "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload, hash) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                ("r1", 2, "EventFromTheFuture", 1_500, payload, row_hash),
            )
        await store.append("r1", known[1:], expected_seq=2)

        stored = await store.read("r1")

        assert [s.type for s in stored] == [
            "RunStatusChanged",
            "EventFromTheFuture",
            "RunStatusChanged",
        ]
        assert decoded(stored) == known
        assert decoded(await store.read_all()) == known


# ---------------------------------------------------------------------------- SQLite only


async def test_sqlite_events_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    events = status_events("r1", 2) + node_events("r1", "a")
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", events[:2], expected_seq=0, workflow_name="wf")
        await store.append("r1", events[2:], expected_seq=2, status="finished")
        before = (await store.read_all(), await store.get_run("r1"))

    async with await SQLiteEventStore.open(path, durability="full") as store:
        assert (await store.read_all(), await store.get_run("r1")) == before
        assert decoded(await store.read("r1")) == events
        assert await store.append("r1", status_events("r1", 1), expected_seq=5) == 6


async def test_sqlite_open_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / ".smithers" / "nested" / "smithers.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
    assert path.is_file()


async def test_sqlite_open_without_create_on_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(DatabaseQueryError, match="No database") as info:
        await SQLiteEventStore.open(path, create=False)
    assert info.value.code == "DB_QUERY_FAILED"
    assert not path.exists()


async def test_a_file_that_is_not_sqlite_is_a_query_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not an SQLite database\n" * 200)

    with pytest.raises(DatabaseQueryError, match="integrity_check") as info:
        await SQLiteEventStore.open(path)

    assert info.value.code == "DB_QUERY_FAILED"
    assert info.value.details["dbPath"] == str(path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


async def test_a_corrupt_database_is_a_query_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xab" * (4096 - 100)  # page 1 (the schema) after the file header
    path.write_bytes(bytes(data))

    with pytest.raises(DatabaseQueryError, match="integrity_check") as info:
        await SQLiteEventStore.open(path)

    assert info.value.code == "DB_QUERY_FAILED"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="needs a non-root POSIX user: root ignores file permissions",
)
async def test_a_read_only_database_is_a_write_error(tmp_path: Path) -> None:
    directory = tmp_path / "ro"
    path = directory / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
    path.chmod(0o444)
    directory.chmod(0o555)
    try:
        # Either opening (WAL needs a writable directory) or the append must fail typed.
        with pytest.raises(DatabaseWriteError) as info:
            async with await SQLiteEventStore.open(path) as store:
                await store.append("r1", status_events("r1", 1), expected_seq=1)
        assert info.value.code == "DB_WRITE_FAILED"
    finally:
        directory.chmod(0o755)
        path.chmod(0o644)


async def test_a_locked_database_is_a_write_error_after_retries(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path, busy_timeout_ms=50) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0)
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")

            with pytest.raises(DatabaseWriteError, match="locked") as info:
                await store.append("r1", status_events("r1", 2), expected_seq=1)

            assert info.value.code == "DB_WRITE_FAILED"
            assert info.value.details["dbPath"] == str(path)
            # WAL: readers are not blocked by the writer's lock.
            assert len(await store.read("r1")) == 1
        finally:
            locker.execute("ROLLBACK")
            locker.close()

        assert await store.append("r1", status_events("r1", 2), expected_seq=1) == 3
        assert [s.seq for s in await store.read("r1")] == [1, 2, 3]


async def test_a_batch_failing_midway_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", status_events("r1", 1), expected_seq=0, workflow_name="wf")
        before = await store.get_run("r1")
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute(
                "CREATE TRIGGER refuse_node_started BEFORE INSERT ON _smithers_events "
                "WHEN NEW.type = 'NodeStarted' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        # NodePending is inserted first, then NodeStarted aborts the statement.
        batch = node_events("r1", "a")

        with pytest.raises(DatabaseWriteError, match="refused"):
            await store.append("r1", batch, expected_seq=1, status="finished")

        assert await store.last_seq("r1") == 1
        assert [s.type for s in await store.read_all()] == ["RunStatusChanged"]
        assert await store.get_run("r1") == before


async def test_two_stores_racing_to_create_a_run_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    outcomes: list[str] = []

    async def create(store: SQLiteEventStore, name: str) -> None:
        try:
            await store.append("r1", [_run_started(name)], expected_seq=0, workflow_name=name)
            outcomes.append("won")
        except RunAlreadyExistsError:
            outcomes.append("lost")

    async with (
        await SQLiteEventStore.open(path) as first,
        await SQLiteEventStore.open(path) as second,
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(create, first, "one")
            tg.start_soon(create, second, "two")
        stored = await first.read("r1")

    assert sorted(outcomes) == ["lost", "won"]
    assert len(stored) == 1


def _run_started(owner: str) -> RunStarted:
    return RunStarted(run_id="r1", timestamp_ms=1, workflow_name="wf", owner_id=owner)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_store_whose_last_append_is_stale_gets_a_conflict_not_a_fork(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Store `a` remembers r1's last (seq, hash) from its own append and skips reading it
    # next time; another store's append in between must still be a conflict, and `a`'s
    # next append at the right seq chains from the other store's row.
    async def open_one() -> EventStore:
        if backend == "postgres":
            return await PostgresEventStore.open(request.getfixturevalue("pg_url"))
        return await SQLiteEventStore.open(tmp_path / "s.db")

    async with await open_one() as a, await open_one() as b:
        await a.append("r1", status_events("r1", 2), expected_seq=0, workflow_name="wf")
        await b.append("r1", status_events("r1", 1, start_ms=5_000), expected_seq=2)
        with pytest.raises(SeqConflictError) as info:
            await a.append("r1", status_events("r1", 1, start_ms=6_000), expected_seq=2)
        assert info.value.details["actualSeq"] == 3
        await a.append("r1", status_events("r1", 1, start_ms=7_000), expected_seq=3)
        await a.append("r1", status_events("r1", 1, start_ms=8_000), expected_seq=4, status="x")
        assert [r.seq for r in await b.read("r1")] == [1, 2, 3, 4, 5]
        assert verify_chain(await b.read_chained("r1")) is None
        run = await b.get_run("r1")
        assert run is not None
        assert (run.status, run.workflow_name, run.last_seq) == ("x", "wf", 5)
