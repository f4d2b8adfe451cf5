"""Wake-ups without polling on PostgreSQL: LISTEN/NOTIFY on append (issue 14, part 2).

Every transaction that inserts events also runs `NOTIFY_SQL` (``pg_notify`` on the
schema's channel, the run id as payload), which PostgreSQL delivers at commit, to every
connection listening, on any host. A `Listener` is one such connection: a follower
(``logs -f``, ``events --watch``, a handle's ``follow_events``) waits on it instead of
sleeping, and re-reads when it wakes. The wait has a timeout, so a lost notification
(a dropped connection) costs at most one poll interval, never a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ("NOTIFY_SQL", "Listener")

NOTIFY_SQL = "SELECT pg_notify('smithers_' || current_schema(), %s)"
"""Run (with the run id) inside each transaction that inserts a run's events."""


class Listener:
    """One connection listening on the schema's channel (``smithers_<schema>``).

    Notifications that arrive between two `wait` calls wait in the connection (they
    are not lost); `wait` returns at the first one for the run asked about.

    Args:
        psycopg: The imported driver module.
        url: The store's URL (same database and search_path).
    """

    def __init__(self, psycopg: Any, url: str) -> None:
        self._psycopg = psycopg
        self._url = url
        self._conn: AsyncConnection[Any] | None = None

    async def _connect(self) -> AsyncConnection[Any]:
        psycopg = self._psycopg
        conn: AsyncConnection[Any] = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True
        )
        cur = await conn.execute("SELECT current_schema()")
        row = await cur.fetchone()
        channel = f"smithers_{row[0] if row else 'public'}"
        await conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
        return conn

    async def wait(self, run_id: str | None, timeout_s: float) -> bool:
        """Wait until a transaction appending to `run_id` (None: any run) commits.

        Awaits I/O. The first call starts listening and returns False at once: an
        append committed before it would not be notified, so the caller reads again
        now, then waits. A connection error closes the listener (the next call makes
        a new one) and waits out the timeout, as a poll would.

        Args:
            run_id: The run to wait for; None for any run.
            timeout_s: Longest wait, seconds.

        Returns:
            True if such an append was notified; False at the timeout (read again).
        """
        psycopg = self._psycopg
        if self._conn is None or self._conn.closed:
            try:
                self._conn = await self._connect()
            except psycopg.Error:
                await _sleep(timeout_s)
            return False
        deadline = time.monotonic() + timeout_s
        try:
            while (left := deadline - time.monotonic()) > 0:
                async for note in self._conn.notifies(timeout=left, stop_after=1):
                    if run_id is None or note.payload == run_id:
                        return True
        except psycopg.Error:
            await self.close()
            await _sleep(deadline - time.monotonic())
        return False

    async def close(self) -> None:
        """Stop listening and close the connection. Awaits I/O."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(self._psycopg.Error):
                await conn.close()


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)
