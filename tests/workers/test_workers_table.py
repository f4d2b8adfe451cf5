"""The workers side table on every store: a row per worker, replaced, listed, deleted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from smithers.eventstore import MemoryEventStore, WorkerRecord, open_store

if TYPE_CHECKING:
    from pathlib import Path

    from smithers.eventstore import EventStore


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> EventStore:
    if request.param == "memory":
        opened: EventStore = MemoryEventStore()
    elif request.param == "sqlite":
        opened = await open_store(tmp_path / "smithers.db")
    else:
        opened = await open_store(request.getfixturevalue("pg_url"))
    return opened


async def test_worker_rows_are_replaced_listed_and_deleted(store: EventStore) -> None:
    try:
        assert await store.list_workers() == []  # no worker ever ran: no table needed
        a = WorkerRecord(name="a", host="h1", pid=10, queues=("x", "y"), concurrency=2)
        b = WorkerRecord(name="b", host="h2", pid=11, runs=("r1",), heartbeat_at_ms=5)
        await store.put_worker(b)
        await store.put_worker(a)
        assert await store.list_workers() == [a, b]
        a2 = WorkerRecord(name="a", host="h1", pid=10, runs=("r2", "r3"), draining=True)
        await store.put_worker(a2)
        assert await store.list_workers() == [a2, b]
        await store.delete_worker("a")
        await store.delete_worker("nobody")
        assert await store.list_workers() == [b]
    finally:
        await store.close()


async def test_a_live_worker_forgets_the_rows_of_workers_long_silent(tmp_path: Path) -> None:
    import time

    import anyio
    from smithers.engine import run_worker

    db = tmp_path / "smithers.db"
    now_ms = time.time_ns() // 1_000_000
    killed = WorkerRecord(name="killed", host="h", pid=1, heartbeat_at_ms=now_ms - 601_000)
    recent = WorkerRecord(name="recent", host="h", pid=2, heartbeat_at_ms=now_ms - 60_000)
    store = await open_store(db)
    try:
        await store.put_worker(killed)
        await store.put_worker(recent)
    finally:
        await store.close()
    stop = anyio.Event()
    seen: list[list[str]] = []

    async def watch() -> None:
        for _ in range(100):  # the first beat (2 s) forgets; then look
            await anyio.sleep(0.1)
            listed = await open_store(db, create=False)
            try:
                names = [w.name for w in await listed.list_workers()]
            finally:
                await listed.close()
            seen.append(names)
            if "killed" not in names and "w" in names:
                break
        stop.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        await run_worker(db, name="w", poll_s=0.2, stop=stop, log=lambda _: None)
    # A row silent for 10 minutes is gone; one silent for a minute is still shown.
    assert seen[-1] == ["recent", "w"]
