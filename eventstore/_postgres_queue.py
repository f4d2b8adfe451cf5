"""The PostgreSQL store's workers table (`_workers`): a mixin of `PostgresEventStore`."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ._sqlite_queue import worker_params, worker_record
from ._workers import WORKERS_TABLE, WorkerRecord

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

__all__ = (
    "PostgresWorkerTable",
    "queue_claim_lock",
    "release_run_claim",
    "try_run_claim",
)

_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {WORKERS_TABLE} (name TEXT PRIMARY KEY, host TEXT NOT NULL, "
    "pid BIGINT NOT NULL, queues TEXT NOT NULL, concurrency INTEGER NOT NULL, "
    "runs TEXT NOT NULL, started_at_ms BIGINT NOT NULL, heartbeat_at_ms BIGINT NOT NULL, "
    "draining INTEGER NOT NULL)"
)
_COLUMNS = "name, host, pid, queues, concurrency, runs, started_at_ms, heartbeat_at_ms, draining"
_UPSERT = (
    f"INSERT INTO {WORKERS_TABLE} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
    "queues = excluded.queues, concurrency = excluded.concurrency, runs = excluded.runs, "
    "started_at_ms = excluded.started_at_ms, heartbeat_at_ms = excluded.heartbeat_at_ms, "
    "draining = excluded.draining"
)


class PostgresWorkerTable:
    """``put_worker``, ``delete_worker``, ``list_workers`` on the server."""

    _has_workers_table: bool = False

    if TYPE_CHECKING:

        async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        async def _exec(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def _workers_table(self) -> None:
        if self._has_workers_table:
            return
        # One statement, so one transaction: the lock of schema creation (`SCHEMA_LOCK`),
        # held to its end, serialises the CREATE (which races in PostgreSQL).
        await self._exec(
            "DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext(current_schema() || "
            f"'._smithers_schema')); {_CREATE}; END $$"
        )
        self._has_workers_table = True

    async def put_worker(self, record: WorkerRecord) -> None:
        """Insert or replace the worker's row (see `EventStore.put_worker`).

        Raises:
            DatabaseWriteError: if the write failed.
        """
        await self._workers_table()
        await self._exec(_UPSERT, worker_params(record))

    async def delete_worker(self, name: str) -> None:
        """Delete the worker's row, if any (see `EventStore.delete_worker`).

        Raises:
            DatabaseWriteError: if the write failed.
        """
        await self._workers_table()
        await self._exec(f"DELETE FROM {WORKERS_TABLE} WHERE name = %s", (name,))

    async def list_workers(self) -> list[WorkerRecord]:
        """Every worker row by name; none if no worker ever wrote one.

        Raises:
            DatabaseQueryError: if the server cannot be read.
        """
        found = await self._fetch("SELECT to_regclass(%s)", (WORKERS_TABLE,))
        if not found or found[0][0] is None:
            return []
        rows = await self._fetch(f"SELECT {_COLUMNS} FROM {WORKERS_TABLE} ORDER BY name")
        return [worker_record(r) for r in rows]


@contextlib.asynccontextmanager
async def queue_claim_lock(store: object, queue: str) -> AsyncIterator[None]:
    """Hold the queue's claim lock while counting its running runs and claiming one.

    On `PostgresEventStore`, a session advisory lock keyed by the schema and `queue`
    (``pg_advisory_lock``), so workers on every host take turns: a per-queue limit
    then holds across all of them. On other stores nothing is locked (one host; the
    limit is checked, and two workers claiming in the same milliseconds can pass it by
    one). Awaits I/O.

    Raises:
        DatabaseQueryError: if the server cannot be reached.
    """
    if not isinstance(store, PostgresWorkerTable):
        yield
        return
    key = (queue,)
    await store._fetch(f"SELECT pg_advisory_lock({_QUEUE_KEY})", key)
    try:
        yield
    finally:
        await store._fetch(f"SELECT pg_advisory_unlock({_QUEUE_KEY})", key)


_QUEUE_KEY = "hashtext(current_schema() || '._smithers_queue.' || %s)"
_RUN_KEY = "hashtext(current_schema() || '._smithers_claim.' || %s)"


async def try_run_claim(store: object, run_id: str) -> bool:
    """Take run `run_id`'s claim lock if no other worker holds it; True if taken.

    A hint that spares the losers of a race the work of a claim (loading the workflow,
    folding the log) before their conditional append fails: on `PostgresEventStore`,
    a session advisory lock keyed by the schema and run (``pg_try_advisory_lock``,
    never waited for), released by `release_run_claim` once the claim is recorded (or
    with the connection, if the worker dies). The claim itself stays the append with
    ``expected_seq``. Always True on other stores. Awaits I/O.

    Raises:
        DatabaseQueryError: if the server cannot be reached.
    """
    if not isinstance(store, PostgresWorkerTable):
        return True
    rows = await store._fetch(f"SELECT pg_try_advisory_lock({_RUN_KEY})", (run_id,))
    return bool(rows and rows[0][0])


async def release_run_claim(store: object, run_id: str) -> None:
    """Release the claim lock `try_run_claim` took (nothing on other stores).

    Raises:
        DatabaseQueryError: if the server cannot be reached.
    """
    if isinstance(store, PostgresWorkerTable):
        await store._fetch(f"SELECT pg_advisory_unlock({_RUN_KEY})", (run_id,))
