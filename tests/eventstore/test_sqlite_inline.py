"""SQLite appends on the event loop's thread: the fast path and every way around it.

An uncontended append with ``durability="normal"`` commits on the calling thread; a
held write lock, ``durability="full"``, a big batch and WAL checkpoints go through the
connection thread. These tests pin each of those, and that the loop never blocks.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import closing
from typing import TYPE_CHECKING, Literal, TypeVar

import anyio
import msgspec
import pytest
from smithers.eventstore import RunRecord, SeqConflictError, SQLiteEventStore
from smithers.eventstore.events import Event, FrameCommitted, NodeFinished, NodeStarted

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

T = TypeVar("T")

_OUTPUT = msgspec.Raw(b'{"task":"t00001","ok":true,"note":"noop-ok!"}')


def step(run_id: str, i: int) -> list[Event]:
    """The engine's batch for one sequential step: a finish, a frame, the next start."""
    return [
        NodeFinished(run_id=run_id, timestamp_ms=i, node_id=f"t{i}", attempt=1, output=_OUTPUT),
        FrameCommitted(run_id=run_id, timestamp_ms=i, frame_no=i, xml_hash="0" * 64),
        NodeStarted(run_id=run_id, timestamp_ms=i, node_id=f"t{i + 1}", attempt=1),
    ]


async def without_yielding(call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
    """Await `call()`; also return True if no other task ran meanwhile (no thread hop)."""
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        result = await call()
        done = not ran
    return result, done


async def appended_without_yielding(store: SQLiteEventStore, run_id: str, seq: int) -> bool:
    """Append one step; True if no other task ran meanwhile (no thread hop, no await)."""
    last, inline = await without_yielding(
        lambda: store.append(run_id, step(run_id, seq), expected_seq=seq)
    )
    assert last == seq + 3
    return inline


async def test_an_uncontended_append_commits_on_the_loop_thread(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", step("r1", 0), expected_seq=0)  # opens the inline connection
        assert await appended_without_yielding(store, "r1", 3)
        assert [s.seq for s in await store.read("r1")] == [1, 2, 3, 4, 5, 6]
    # Committed, not just written: another connection sees it after close.
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT max(seq) FROM _smithers_events").fetchone()[0] == 6


@pytest.mark.parametrize("durability", ["full"])
async def test_durability_full_always_goes_through_the_thread(
    tmp_path: Path, durability: Literal["full"]
) -> None:
    async with await SQLiteEventStore.open(tmp_path / "s.db", durability=durability) as store:
        await store.append("r1", step("r1", 0), expected_seq=0)
        assert not await appended_without_yielding(store, "r1", 3)
        assert not store._inline_appends


async def test_a_big_batch_goes_through_the_thread(tmp_path: Path) -> None:
    async with await SQLiteEventStore.open(tmp_path / "s.db") as store:
        await store.append("r1", step("r1", 0), expected_seq=0)
        ran = False

        async def other() -> None:
            nonlocal ran
            ran = True

        batch = [e for i in range(30) for e in step("r1", i)]  # 90 events
        async with anyio.create_task_group() as tg:
            tg.start_soon(other)
            assert await store.append("r1", batch, expected_seq=3) == 93
            assert ran


async def test_the_inline_connection_never_checkpoints(tmp_path: Path) -> None:
    async with await SQLiteEventStore.open(tmp_path / "s.db") as store:
        await store.append("r1", step("r1", 0), expected_seq=0)
        assert store._inline is not None
        conn = store._inline._conn
        assert conn is not None
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0


async def test_a_held_write_lock_is_waited_on_in_the_thread_not_on_the_loop(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", step("r1", 0), expected_seq=0)
        locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        locker.execute("BEGIN IMMEDIATE")  # another process mid-append, for 300 ms
        release = threading.Timer(0.3, lambda: locker.execute("ROLLBACK"))
        worst_gap_s = 0.0
        stop = anyio.Event()

        async def ticker() -> None:
            nonlocal worst_gap_s
            last = time.perf_counter()
            while not stop.is_set():
                await anyio.sleep(0.005)
                now = time.perf_counter()
                worst_gap_s = max(worst_gap_s, now - last)
                last = now

        try:
            release.start()
            async with anyio.create_task_group() as tg:
                tg.start_soon(ticker)
                t0 = time.perf_counter()
                seq = await store.append("r1", step("r1", 3), expected_seq=3)
                waited_s = time.perf_counter() - t0
                stop.set()
        finally:
            release.join()
            locker.close()

        assert seq == 6
        assert waited_s >= 0.25  # it did wait for the lock...
        assert worst_gap_s < 0.15  # ...and the loop went on meanwhile
        assert await appended_without_yielding(store, "r1", 6)  # inline again after


async def test_a_conflict_found_inline_is_typed_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with (
        await SQLiteEventStore.open(path) as ours,
        await SQLiteEventStore.open(path) as theirs,
    ):
        await ours.append("r1", step("r1", 0), expected_seq=0)
        await ours.append("r1", step("r1", 3), expected_seq=3)  # inline from here on
        await theirs.append("r1", step("r1", 6), expected_seq=6)

        with pytest.raises(SeqConflictError):
            await ours.append("r1", step("r1", 6), expected_seq=6)

        assert await ours.last_seq("r1") == 9
        assert [s.seq for s in await ours.read("r1")] == list(range(1, 10))


async def test_the_wal_stays_bounded_under_a_steady_stream_of_appends(tmp_path: Path) -> None:
    # Checkpoints run in the connection thread, racing the inline appends; the WAL
    # must still start over (without that it grows ~10 KB per append: 60 MB here).
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        seq = 0
        for i in range(6_000):
            seq = await store.append("r1", step("r1", i), expected_seq=seq)
            if i % 4 == 0:
                await anyio.sleep(0)
        await anyio.sleep(0.05)
        wal_bytes = os.path.getsize(f"{path}-wal")
        assert seq == 18_000
        assert len(await store.read("r1")) == 18_000
    assert wal_bytes < 30_000_000


async def test_one_store_appended_to_from_two_threads(tmp_path: Path) -> None:
    # Two event loops (threads) share one store: the inline connection is never used
    # by both at once (one takes the thread path when the other holds it).
    path = tmp_path / "s.db"
    errors: list[BaseException] = []
    async with await SQLiteEventStore.open(path) as store:

        async def appends(run_id: str) -> None:
            seq = 0
            for i in range(300):
                seq = await store.append(run_id, step(run_id, i), expected_seq=seq)

        def in_thread(run_id: str) -> None:
            try:
                anyio.run(appends, run_id)
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=in_thread, args=(r,)) for r in ("a", "b")]
        for t in threads:
            t.start()
        await anyio.to_thread.run_sync(lambda: [t.join() for t in threads])

        assert errors == []
        for run_id in ("a", "b"):
            assert [s.seq for s in await store.read(run_id)] == list(range(1, 901))


async def test_the_runs_index_follows_appends_that_change_no_status(tmp_path: Path) -> None:
    async with await SQLiteEventStore.open(tmp_path / "s.db") as store:
        await store.append("r1", step("r1", 0), expected_seq=0, workflow_name="wf")
        await store.append("r1", step("r1", 7), expected_seq=3)

        expected = RunRecord(
            run_id="r1",
            workflow_name="wf",
            status="running",
            created_at_ms=0,
            updated_at_ms=7,
            last_seq=6,
        )
        assert await store.get_run("r1") == expected
        assert await store.list_runs() == [expected]


@pytest.mark.parametrize("durability", ["normal", "full"])
async def test_small_reads_run_on_the_loop_thread_and_big_ones_hop(
    tmp_path: Path, durability: Literal["normal", "full"]
) -> None:
    async with await SQLiteEventStore.open(tmp_path / "s.db", durability=durability) as store:
        seq = 0
        for i in range(400):  # 1,200 events
            seq = await store.append("r1", step("r1", i), expected_seq=seq)
        await store.put_checkpoint("r1", 600, b"state")

        small = [
            lambda: store.last_seq("r1"),
            lambda: store.get_run("r1"),
            lambda: store.get_lease("r1"),
            lambda: store.get_checkpoint("r1", at_or_before_seq=700),
            lambda: store.read("r1", after_seq=100, upto_seq=164),
            lambda: store.read_all(after_position=5, limit=10),
        ]
        for read in small:
            _, inline = await without_yielding(read)
            assert inline
        assert (await without_yielding(lambda: store.last_seq("r1")))[0] == 1_200
        rows, inline = await without_yielding(lambda: store.read("r1", after_seq=7, upto_seq=9))
        assert [(r.run_id, r.seq) for r in rows] == [("r1", 8), ("r1", 9)]

        everything, inline = await without_yielding(lambda: store.read("r1"))
        assert not inline
        assert [r.seq for r in everything] == list(range(1, 1_201))
        assert all(r.run_id == "r1" for r in everything)


async def test_a_small_read_while_another_writer_holds_the_lock_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with await SQLiteEventStore.open(path) as store:
        await store.append("r1", step("r1", 0), expected_seq=0)
        with closing(sqlite3.connect(path, isolation_level=None)) as locker:
            locker.execute("BEGIN EXCLUSIVE")  # WAL: readers are not blocked
            try:
                seq, inline = await without_yielding(lambda: store.last_seq("r1"))
            finally:
                locker.execute("ROLLBACK")
        assert (seq, inline) == (3, True)


async def test_stores_opening_a_new_file_at_once_all_open(tmp_path: Path) -> None:
    # They race to switch the new file to WAL, which SQLite refuses at once (no busy
    # wait) to the losers: opening retries.
    for i in range(15):
        path = tmp_path / f"s{i}.db"
        stores: list[SQLiteEventStore] = []

        async def open_one(path: Path = path, stores: list[SQLiteEventStore] = stores) -> None:
            stores.append(await SQLiteEventStore.open(path))

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(open_one)
            for n, store in enumerate(stores):
                await store.append(f"r{n}", step(f"r{n}", 0), expected_seq=0)
        finally:
            for store in stores:
                await store.close()
        assert len(stores) == 4
