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
