"""The SQLite store's workers table (`_workers`): a mixin of `SQLiteEventStore`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._workers import WORKERS_TABLE, WorkerRecord

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from typing import TypeVar

    _T = TypeVar("_T")

__all__ = ("SQLiteWorkerTable",)

_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {WORKERS_TABLE} (name TEXT PRIMARY KEY, host TEXT NOT NULL, "
    "pid INTEGER NOT NULL, queues TEXT NOT NULL, concurrency INTEGER NOT NULL, "
    "runs TEXT NOT NULL, started_at_ms INTEGER NOT NULL, heartbeat_at_ms INTEGER NOT NULL, "
    "draining INTEGER NOT NULL)"
)
_COLUMNS = "name, host, pid, queues, concurrency, runs, started_at_ms, heartbeat_at_ms, draining"


def _upsert(conn: sqlite3.Connection, params: tuple[Any, ...]) -> int:
    conn.execute(_CREATE)
    sql = f"INSERT OR REPLACE INTO {WORKERS_TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    return conn.execute(sql, params).rowcount


def _delete(conn: sqlite3.Connection, name: str) -> int:
    conn.execute(_CREATE)
    return conn.execute(f"DELETE FROM {WORKERS_TABLE} WHERE name = ?", (name,)).rowcount


def worker_params(record: WorkerRecord) -> tuple[Any, ...]:
    """The row of `record`, lists as JSON text (both stores use it)."""
    return (
        record.name,
        record.host,
        record.pid,
        json.dumps(list(record.queues)),
        record.concurrency,
        json.dumps(list(record.runs)),
        record.started_at_ms,
        record.heartbeat_at_ms,
        int(record.draining),
    )


def worker_record(row: Any) -> WorkerRecord:
    """A `WorkerRecord` from a row of `_COLUMNS` (both stores use it)."""
    return WorkerRecord(
        name=str(row[0]),
        host=str(row[1]),
        pid=int(row[2]),
        queues=tuple(json.loads(row[3])),
        concurrency=int(row[4]),
        runs=tuple(json.loads(row[5])),
        started_at_ms=int(row[6]),
        heartbeat_at_ms=int(row[7]),
        draining=bool(row[8]),
    )


class SQLiteWorkerTable:
    """``put_worker``, ``delete_worker``, ``list_workers`` on the SQLite file."""

    if TYPE_CHECKING:

        async def _read(
            self, sql: str, params: tuple[Any, ...], *, small: bool = False
        ) -> list[Any]: ...

        async def _write(self, fn: Callable[..., _T], *args: Any) -> _T: ...

    async def put_worker(self, record: WorkerRecord) -> None:
        """Insert or replace the worker's row (see `EventStore.put_worker`).

        Raises:
            DatabaseWriteError: if the write failed.
        """
        await self._write(_upsert, worker_params(record))

    async def delete_worker(self, name: str) -> None:
        """Delete the worker's row, if any (see `EventStore.delete_worker`).

        Raises:
            DatabaseWriteError: if the write failed.
        """
        await self._write(_delete, name)

    async def list_workers(self) -> list[WorkerRecord]:
        """Every worker row by name; none if no worker ever wrote one.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        found = await self._read(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (WORKERS_TABLE,)
        )
        if not found:
            return []
        rows = await self._read(f"SELECT {_COLUMNS} FROM {WORKERS_TABLE} ORDER BY name", ())
        return [worker_record(r) for r in rows]
