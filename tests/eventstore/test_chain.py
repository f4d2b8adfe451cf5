"""The hash chain of a run's log (issue 16): the formula, both stores, forks, tampering."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smithers.eventstore import (
    ZERO_HASH,
    ChainBreak,
    EventStore,
    MemoryEventStore,
    PostgresEventStore,
    SQLiteEventStore,
    StoredEvent,
    chain_hash,
    chain_origin,
    encode_event,
    verify_chain,
)
from smithers.eventstore.events import Event, NodeFinished, RunForked, RunStatusChanged

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


def status_events(run_id: str, n: int, *, start_ms: int = 1_000) -> list[Event]:
    return [
        RunStatusChanged(run_id=run_id, timestamp_ms=start_ms + i, status="running")
        for i in range(n)
    ]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    s: EventStore
    if request.param == "memory":
        s = MemoryEventStore()
    elif request.param == "postgres":
        # A fresh schema per test (tests/conftest.py `pg_url`); skipped without a server.
        s = await PostgresEventStore.open(request.getfixturevalue("pg_url"))
    else:
        s = await SQLiteEventStore.open(tmp_path / "chain.db")
    try:
        yield s
    finally:
        await s.close()


def row(seq: int, payload: bytes, *, prev: bytes, position: int | None = None) -> StoredEvent:
    return StoredEvent(
        position=seq if position is None else position,
        run_id="r1",
        seq=seq,
        type="RunStatusChanged",
        timestamp_ms=seq,
        data=payload,
        hash=chain_hash(prev, seq, "RunStatusChanged", payload),
    )


def chain_of(payloads: list[bytes]) -> list[StoredEvent]:
    rows: list[StoredEvent] = []
    prev = ZERO_HASH
    for seq, payload in enumerate(payloads, 1):
        rows.append(row(seq, payload, prev=prev))
        prev = rows[-1].hash
    return rows


# ---------------------------------------------------------------------------- the formula


def test_chain_hash_is_the_documented_formula() -> None:
    prev = bytes(range(32))
    payload = b'{"type":"RunStatusChanged"}'
    expected = hashlib.sha256(
        prev + (7).to_bytes(8, "big") + b"RunStatusChanged" + b"\x00" + payload
    ).digest()
    assert chain_hash(prev, 7, "RunStatusChanged", payload) == expected
    # A fixed value: changing the formula breaks every chain already on disk.
    assert chain_hash(ZERO_HASH, 1, "T", b"{}").hex() == (
        hashlib.sha256(bytes(32) + b"\x00" * 7 + b"\x01T\x00{}").hexdigest()
    )
    assert len(expected) == 32


def test_seq_and_type_are_part_of_the_hash() -> None:
    base = chain_hash(ZERO_HASH, 1, "A", b"x")
    assert chain_hash(ZERO_HASH, 2, "A", b"x") != base
    assert chain_hash(ZERO_HASH, 1, "B", b"x") != base
    # The separator keeps "type + payload" unambiguous.
    assert chain_hash(ZERO_HASH, 1, "Ax", b"") != chain_hash(ZERO_HASH, 1, "A", b"x")


def test_chain_origin_of_a_fork_and_of_anything_else() -> None:
    fork = RunForked(
        run_id="child", timestamp_ms=1, parent_run_id="parent", parent_frame_no=2, parent_seq=9
    )
    assert chain_origin("RunForked", encode_event(fork)) == ("parent", 9)
    other = status_events("r1", 1)[0]
    assert chain_origin("RunStatusChanged", encode_event(other)) is None
    assert chain_origin("RunForked", b"not json") is None


# ---------------------------------------------------------------------------- verify_chain


def test_an_intact_chain_verifies() -> None:
    assert verify_chain(chain_of([b"a", b"b", b"c"])) is None
    assert verify_chain([]) is None


def test_a_changed_payload_is_named_by_its_seq() -> None:
    rows = chain_of([b"a", b"b", b"c", b"d"])
    rows[2] = msgspec.structs.replace(rows[2], data=b"C")
    assert verify_chain(rows) == ChainBreak(seq=3, reason="payload")
    assert verify_chain(rows).message == "seq 3: payload bytes changed"  # type: ignore[union-attr]


def test_a_missing_row_is_a_gap_at_its_seq() -> None:
    rows = chain_of([b"a", b"b", b"c", b"d"])
    del rows[1]
    found = verify_chain(rows)
    assert found == ChainBreak(seq=2, reason="gap")
    assert found is not None
    assert found.message == "seq 2: row missing (gap at seq 2)"
    assert verify_chain(chain_of([b"a", b"b"])[1:]) == ChainBreak(seq=1, reason="gap")


def test_rows_whose_seqs_were_swapped_are_out_of_order() -> None:
    rows = chain_of([b"a", b"b", b"c", b"d"])
    second, third = rows[1], rows[2]
    rows[1] = msgspec.structs.replace(third, seq=2)
    rows[2] = msgspec.structs.replace(second, seq=3)
    assert verify_chain(rows) == ChainBreak(seq=2, reason="order")


def test_rows_whose_contents_were_swapped_are_out_of_order() -> None:
    rows = chain_of([b"a", b"b", b"c", b"d"])
    second, third = rows[1], rows[2]
    # Same positions and seqs; type, payload and hash exchanged.
    rows[1] = msgspec.structs.replace(third, seq=2, position=second.position)
    rows[2] = msgspec.structs.replace(second, seq=3, position=third.position)
    assert verify_chain(rows) == ChainBreak(seq=2, reason="order")


def test_a_chain_checked_from_the_middle() -> None:
    rows = chain_of([b"a", b"b", b"c"])
    assert verify_chain(rows[1:], prev=rows[0].hash, after_seq=1) is None
    assert verify_chain(rows[1:], prev=ZERO_HASH, after_seq=1) == ChainBreak(
        seq=2, reason="payload"
    )


# ---------------------------------------------------------------------------- the stores


async def test_every_append_chains_its_rows(store: EventStore) -> None:
    await store.append("r1", status_events("r1", 2), expected_seq=0)
    await store.append("r1", status_events("r1", 3, start_ms=2_000), expected_seq=2)
    await store.append("r2", status_events("r2", 1), expected_seq=0)

    rows = await store.read_chained("r1")
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0].hash == chain_hash(ZERO_HASH, 1, rows[0].type, rows[0].data)
    assert verify_chain(rows) is None
    assert verify_chain(await store.read_chained("r2")) is None
    # Plain reads are unchanged: no hash fetched.
    assert all(r.hash == b"" for r in await store.read("r1"))
    part = await store.read_chained("r1", after_seq=2, upto_seq=4)
    assert part == rows[2:4]
    assert await store.read_chained("nosuch") == []


async def test_both_stores_chain_the_same_bytes_alike(tmp_path: Path) -> None:
    events = status_events("r1", 4)
    memory = MemoryEventStore()
    await memory.append("r1", events[:1], expected_seq=0)
    await memory.append("r1", events[1:], expected_seq=1)
    async with await SQLiteEventStore.open(tmp_path / "s.db") as sqlite:
        await sqlite.append("r1", events[:3], expected_seq=0)
        await sqlite.append("r1", events[3:], expected_seq=3)
        on_disk = [r.hash for r in await sqlite.read_chained("r1")]
    assert [r.hash for r in await memory.read_chained("r1")] == on_disk


async def test_a_forks_first_row_chains_from_the_parents_row_at_the_fork(
    store: EventStore,
) -> None:
    await store.append("parent", status_events("parent", 4), expected_seq=0)
    fork = RunForked(
        run_id="child", timestamp_ms=5_000, parent_run_id="parent", parent_frame_no=1, parent_seq=2
    )
    await store.append("child", [fork, *status_events("child", 2)], expected_seq=0)

    parent = await store.read_chained("parent")
    child = await store.read_chained("child")
    assert child[0].hash == chain_hash(parent[1].hash, 1, "RunForked", child[0].data)
    assert verify_chain(child, prev=parent[1].hash) is None
    assert verify_chain(child) == ChainBreak(seq=1, reason="payload")  # not from zeros


async def test_a_fork_of_a_missing_parent_row_chains_from_zeros(store: EventStore) -> None:
    fork = RunForked(
        run_id="orphan", timestamp_ms=1, parent_run_id="gone", parent_frame_no=1, parent_seq=3
    )
    await store.append("orphan", [fork], expected_seq=0)
    assert verify_chain(await store.read_chained("orphan")) is None


async def test_big_batches_taking_the_thread_path_are_chained(tmp_path: Path) -> None:
    big = [
        NodeFinished(
            run_id="r1",
            timestamp_ms=1_000 + i,
            node_id=f"n{i}",
            attempt=1,
            output=msgspec.Raw(msgspec.json.encode("x" * 100)),
        )
        for i in range(200)
    ]
    async with await SQLiteEventStore.open(tmp_path / "s.db") as store:
        await store.append("r1", big[:100], expected_seq=0)
        await store.append("r1", big[100:], expected_seq=100)
        assert verify_chain(await store.read_chained("r1")) is None
    async with await SQLiteEventStore.open(tmp_path / "f.db", durability="full") as store:
        await store.append("r1", big[:3], expected_seq=0)
        await store.append("r1", big[3:5], expected_seq=3)
        assert verify_chain(await store.read_chained("r1")) is None


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(
        st.tuples(st.sampled_from(["r1", "r2", "r3"]), st.integers(min_value=1, max_value=80)),
        min_size=1,
        max_size=12,
    )
)
def test_random_appends_in_random_batches_always_verify(
    batches: list[tuple[str, int]],
) -> None:
    async def scenario(path: Path) -> None:
        memory = MemoryEventStore()
        async with await SQLiteEventStore.open(path) as sqlite:
            for run_id, n in batches:
                for s in (memory, sqlite):
                    last = await s.last_seq(run_id)
                    await s.append(run_id, status_events(run_id, n), expected_seq=last)
            for run_id in {r for r, _ in batches}:
                on_disk = await sqlite.read_chained(run_id)
                assert verify_chain(on_disk) is None
                in_memory = await memory.read_chained(run_id)
                assert [r.hash for r in in_memory] == [r.hash for r in on_disk]

    with tempfile.TemporaryDirectory(prefix="pt-chain-") as tmp:
        anyio.run(scenario, Path(tmp) / "p.db")


# ---------------------------------------------------------------------------- tampering


def tamper(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for sql, params in statements:
            conn.execute(sql, params)


async def chain_rows(path: Path, run_id: str) -> list[StoredEvent]:
    async with await SQLiteEventStore.open(path, read_only=True) as store:
        return await store.read_chained(run_id)


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (
            [
                (
                    "UPDATE _smithers_events SET payload = CAST(replace(CAST(payload AS TEXT), "
                    "'running', 'runninG') AS BLOB) WHERE run_id = 'r1' AND seq = 4",
                    (),
                )
            ],
            ChainBreak(seq=4, reason="payload"),
        ),
        (
            [("DELETE FROM _smithers_events WHERE run_id = 'r1' AND seq = 3", ())],
            ChainBreak(seq=3, reason="gap"),
        ),
        (
            [
                ("UPDATE _smithers_events SET seq = -1 WHERE run_id = 'r1' AND seq = 2", ()),
                ("UPDATE _smithers_events SET seq = 2 WHERE run_id = 'r1' AND seq = 5", ()),
                ("UPDATE _smithers_events SET seq = 5 WHERE run_id = 'r1' AND seq = -1", ()),
            ],
            ChainBreak(seq=2, reason="order"),
        ),
    ],
    ids=["one-byte-edit", "deleted-row", "swapped-rows"],
)
async def test_a_tampered_sqlite_file_is_caught_at_the_right_seq(
    tmp_path: Path,
    statements: list[tuple[str, tuple[object, ...]]],
    expected: ChainBreak,
) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", status_events("r1", 3), expected_seq=0)
        await store.append("r1", status_events("r1", 3, start_ms=2_000), expected_seq=3)
        await store.append("r2", status_events("r2", 2), expected_seq=0)
    assert verify_chain(await chain_rows(path, "r1")) is None

    tamper(path, *statements)

    assert verify_chain(await chain_rows(path, "r1")) == expected
    assert verify_chain(await chain_rows(path, "r2")) is None
