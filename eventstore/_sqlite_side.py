"""`SQLiteEventStore`'s side tables, whole-run operations and reads by type.

Leases, checkpoints, importing and deleting whole runs, reads by event type.
A mixin over the store's own primitives (`_read`, `_write`, `_tables_now`), kept apart
from the log's appends and reads (`_sqlite`). Every statement's SQL is here or in
`_sqlite_sql` / `_sqlite_bulk`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ._codec import encode_event
from ._sqlite_bulk import delete_tx, import_tx
from ._sqlite_sql import _LEASE_COLUMNS, _execute_write, _lease, _stored

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._envelope import Lease, StoredEvent
    from ._sqlite_bulk import BulkDeletion, BulkRun, ImportOutcome
    from .events import Event

__all__ = ("SQLiteSideTables",)

_T = TypeVar("_T")

_EVENTS = "_smithers_events"


class SQLiteSideTables:
    """Leases, checkpoints, whole-run operations and reads by type (a mixin)."""

    if TYPE_CHECKING:

        async def _read(
            self, sql: str, params: tuple[Any, ...], *, small: bool = False
        ) -> list[Any]: ...

        async def _write(self, fn: Callable[..., _T], *args: Any) -> _T: ...

        async def _tables_now(self) -> frozenset[str]: ...

    # ------------------------------------------------------------------ leases

    async def put_lease(self, lease: Lease) -> None:
        """Record `lease` as its run's lease, replacing any (see `EventStore.put_lease`).

        Raises:
            DatabaseWriteError: if the database stayed locked through every retry, the
                disk is full or the file read-only; the previous lease is unchanged.
        """
        await self._write(
            _execute_write,
            f"INSERT OR REPLACE INTO _smithers_leases ({_LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (
                lease.run_id,
                lease.owner_id,
                lease.pid,
                lease.host,
                lease.acquired_at_ms,
                lease.heartbeat_at_ms,
            ),
        )

    async def renew_lease(self, run_id: str, owner_id: str, heartbeat_at_ms: int) -> bool:
        """Set the heartbeat if `owner_id` holds the lease (see `EventStore.renew_lease`).

        Returns:
            True if renewed; False if the run has no lease or another owner holds it.

        Raises:
            DatabaseWriteError: if the write failed; the lease is unchanged.
        """
        changed = await self._write(
            _execute_write,
            "UPDATE _smithers_leases SET heartbeat_at_ms = ? WHERE run_id = ? AND owner_id = ?",
            (heartbeat_at_ms, run_id, owner_id),
        )
        return changed > 0

    async def release_lease(self, run_id: str, owner_id: str) -> None:
        """Delete the run's lease if `owner_id` holds it (see `EventStore.release_lease`).

        Raises:
            DatabaseWriteError: if the write failed; the lease is unchanged.
        """
        await self._write(
            _execute_write,
            "DELETE FROM _smithers_leases WHERE run_id = ? AND owner_id = ?",
            (run_id, owner_id),
        )

    async def get_lease(self, run_id: str) -> Lease | None:
        """Return the run's lease or None. Raises `DatabaseQueryError` on I/O failure."""
        if "_smithers_leases" not in await self._tables_now():
            return None
        rows = await self._read(
            f"SELECT {_LEASE_COLUMNS} FROM _smithers_leases WHERE run_id = ?", (run_id,), small=True
        )
        return _lease(rows[0]) if rows else None

    async def list_leases(self) -> list[Lease]:
        """Return every lease by run id. Raises `DatabaseQueryError` on I/O failure."""
        if "_smithers_leases" not in await self._tables_now():
            return []
        rows = await self._read(
            f"SELECT {_LEASE_COLUMNS} FROM _smithers_leases ORDER BY run_id", ()
        )
        return [_lease(r) for r in rows]

    # ------------------------------------------------------------------ checkpoints

    async def put_checkpoint(self, run_id: str, seq: int, data: bytes) -> None:
        """Store the run's checkpoint at `seq` (see `EventStore.put_checkpoint`).

        Raises:
            DatabaseWriteError: if the write failed; nothing of it was kept.
        """
        await self._write(
            _execute_write,
            "INSERT OR REPLACE INTO _smithers_checkpoints (run_id, seq, data) VALUES (?, ?, ?)",
            (run_id, seq, bytes(data)),
        )

    async def get_checkpoint(
        self, run_id: str, *, at_or_before_seq: int
    ) -> tuple[int, bytes] | None:
        """Return ``(seq, data)`` of the latest checkpoint with ``seq <= at_or_before_seq``.

        Returns:
            The checkpoint, or None if the run has none that early.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        if "_smithers_checkpoints" not in await self._tables_now():
            return None
        rows = await self._read(
            "SELECT seq, data FROM _smithers_checkpoints WHERE run_id = ? AND seq <= ? "
            "ORDER BY seq DESC LIMIT 1",
            (run_id, at_or_before_seq),
            small=True,
        )
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    async def delete_checkpoints(self, run_id: str | None = None) -> int:
        """Delete the checkpoints of `run_id`, or of every run if None.

        Returns:
            How many checkpoints were deleted.

        Raises:
            DatabaseWriteError: if the write failed; nothing was deleted.
        """
        if run_id is None:
            return await self._write(_execute_write, "DELETE FROM _smithers_checkpoints", ())
        return await self._write(
            _execute_write, "DELETE FROM _smithers_checkpoints WHERE run_id = ?", (run_id,)
        )

    # ------------------------------------------------------------------ whole runs

    async def import_runs(self, runs: Sequence[BulkRun]) -> list[ImportOutcome]:
        """Write whole runs' rows verbatim in one transaction (see `EventStore.import_runs`)."""
        return await self._write(import_tx, list(runs))

    async def delete_runs(
        self, deletions: Sequence[BulkDeletion], *, audit_stream: str, audit_event: Event | None
    ) -> int:
        """Delete runs and record it in one transaction (see `EventStore.delete_runs`)."""
        row = None
        if audit_event is not None:
            row = (type(audit_event).__name__, audit_event.timestamp_ms, encode_event(audit_event))
        return await self._write(delete_tx, list(deletions), audit_stream, row)

    # ------------------------------------------------------------------ reads by type

    async def read_types(
        self,
        types: Sequence[str],
        *,
        run_ids: Sequence[str] | None = None,
        since_ms: int | None = None,
    ) -> list[StoredEvent]:
        """Return the events whose type is one of `types`, in global order.

        Filtered on the ``type`` column, so other events are never decoded (see
        `EventStore.read_types`).

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        if not types or (run_ids is not None and not run_ids):
            return []
        if _EVENTS not in await self._tables_now():
            return []
        sql = (
            "SELECT position, run_id, seq, type, timestamp_ms, payload FROM _smithers_events "
            f"WHERE type IN ({', '.join('?' * len(types))})"
        )
        params: tuple[Any, ...] = tuple(types)
        if run_ids is not None:
            sql += f" AND run_id IN ({', '.join('?' * len(run_ids))})"
            params += tuple(run_ids)
        if since_ms is not None:
            sql += " AND timestamp_ms >= ?"
            params += (since_ms,)
        return [_stored(r) for r in await self._read(sql + " ORDER BY position", params)]


# ---------------------------------------------------------------------- thread-side code
