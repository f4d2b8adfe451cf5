"""The PostgreSQL store's leases and checkpoints, and how it runs one statement.

`PostgresSideTables` is a mixin of `PostgresEventStore`, as `_sqlite_side` is of the
SQLite store; `execute_whole` runs a statement so that a cancelled caller never leaves
it running unseen.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import anyio

from ._postgres_sql import LEASE_COLUMNS, lease

if TYPE_CHECKING:
    from collections.abc import Sequence

    from psycopg import AsyncConnection, AsyncCursor

    from ._envelope import Lease

__all__ = ("PostgresSideTables", "execute_whole")

_CANCEL_WAIT_S = 5.0
"""Longest wait, seconds, for the server to cancel a cancelled caller's statement."""


class PostgresSideTables:
    """Leases and checkpoints on the server, through the store's `_fetch`/`_exec`."""

    if TYPE_CHECKING:

        async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        async def _exec(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    async def put_lease(self, lease: Lease) -> None:
        """Record `lease` as its run's lease, replacing any (see `EventStore.put_lease`).

        Raises:
            DatabaseWriteError: if the write failed; the previous lease is unchanged.
        """
        await self._exec(
            f"INSERT INTO _smithers_leases ({LEASE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (run_id) DO UPDATE SET owner_id = excluded.owner_id, "
            "pid = excluded.pid, host = excluded.host, acquired_at_ms = "
            "excluded.acquired_at_ms, heartbeat_at_ms = excluded.heartbeat_at_ms",
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

        Raises:
            DatabaseWriteError: if the write failed; the lease is unchanged.
        """
        changed = await self._exec(
            "UPDATE _smithers_leases SET heartbeat_at_ms = %s WHERE run_id = %s AND owner_id = %s",
            (heartbeat_at_ms, run_id, owner_id),
        )
        return changed > 0

    async def release_lease(self, run_id: str, owner_id: str) -> None:
        """Delete the run's lease if `owner_id` holds it (see `EventStore.release_lease`).

        Raises:
            DatabaseWriteError: if the write failed; the lease is unchanged.
        """
        await self._exec(
            "DELETE FROM _smithers_leases WHERE run_id = %s AND owner_id = %s", (run_id, owner_id)
        )

    async def get_lease(self, run_id: str) -> Lease | None:
        """Return the run's lease or None. Raises `DatabaseQueryError` on I/O failure."""
        rows = await self._fetch(
            f"SELECT {LEASE_COLUMNS} FROM _smithers_leases WHERE run_id = %s", (run_id,)
        )
        return lease(rows[0]) if rows else None

    async def list_leases(self) -> list[Lease]:
        """Return every lease by run id. Raises `DatabaseQueryError` on I/O failure."""
        rows = await self._fetch(f"SELECT {LEASE_COLUMNS} FROM _smithers_leases ORDER BY run_id")
        return [lease(r) for r in rows]

    # ------------------------------------------------------------------ checkpoints

    async def put_checkpoint(self, run_id: str, seq: int, data: bytes) -> None:
        """Store the run's checkpoint at `seq` (see `EventStore.put_checkpoint`).

        Raises:
            DatabaseWriteError: if the write failed; nothing of it was kept.
        """
        await self._exec(
            "INSERT INTO _smithers_checkpoints (run_id, seq, data) VALUES (%s, %s, %s) "
            "ON CONFLICT (run_id, seq) DO UPDATE SET data = excluded.data",
            (run_id, seq, bytes(data)),
        )

    async def get_checkpoint(
        self, run_id: str, *, at_or_before_seq: int
    ) -> tuple[int, bytes] | None:
        """Return ``(seq, data)`` of the latest checkpoint with ``seq <= at_or_before_seq``.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        rows = await self._fetch(
            "SELECT seq, data FROM _smithers_checkpoints WHERE run_id = %s AND seq <= %s "
            "ORDER BY seq DESC LIMIT 1",
            (run_id, at_or_before_seq),
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
            return await self._exec("DELETE FROM _smithers_checkpoints")
        return await self._exec("DELETE FROM _smithers_checkpoints WHERE run_id = %s", (run_id,))


async def execute_whole(
    conn: AsyncConnection[Any], sql: str, params: Sequence[Any] | dict[str, Any]
) -> AsyncCursor[Any]:
    """Run one autocommit statement; if the caller is cancelled, cancel it in the server.

    The statement's commit is sent with it, so a cancelled caller must not leave it
    running unseen (it would commit later, e.g. once a lock it waits for is free):
    the server is asked to cancel it and its end is awaited (shielded, at most
    `_CANCEL_WAIT_S`), so when the cancellation propagates the statement either
    never took effect or took effect whole (its commit came first), and the
    connection is idle again (or closed, and replaced by the next call). A read
    cancelled at a run's end (a heartbeat's) so keeps the connection, instead of
    psycopg closing it when anyio cancels its own cancel request.
    """
    task = asyncio.ensure_future(conn.execute(sql, params))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            if not task.done():
                with contextlib.suppress(Exception):
                    await conn.cancel_safe(timeout=_CANCEL_WAIT_S)
                with anyio.move_on_after(_CANCEL_WAIT_S):
                    await asyncio.wait([task])
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: QueryCanceled is the expected end
            else:
                task.cancel()
                with contextlib.suppress(Exception):
                    await conn.close()
        raise
