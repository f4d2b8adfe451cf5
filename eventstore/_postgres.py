"""The PostgreSQL event store: the same log on a server several machines share (issue 14).

Selected by a ``postgresql://`` (or ``postgres://``) URL wherever ``--db`` / ``db=`` is
taken (`open_store`). Driven by psycopg 3's async API (the ``smithers-py[postgres]``
extra), imported only when a URL is opened. One connection per store, used by one
operation at a time (an `anyio.Lock`), in autocommit mode with explicit transactions.

The contract is SQLite's (`EventStore`):

- ``append(expected_seq)``: the run's last row is read, the batch's chain hashes are
  computed from it (`chain_hash`; a fork's first row from its parent's row,
  `chain_origin`), and the rows are inserted in one transaction. Two writers racing
  for the same seq cannot both commit: the ``UNIQUE (run_id, seq)`` constraint refuses
  the second, which becomes `SeqConflictError` (`RunAlreadyExistsError` for seq 1)
  exactly as on SQLite, nothing of its batch kept. No lock is held across the read.
- ``read_all(after_position)`` is gap-safe: every transaction inserting events holds a
  per-schema advisory lock from before its first insert to its commit
  (`_postgres_sql.APPEND_LOCK`), so positions become visible in increasing order.
- The schema's version is kept in ``_smithers_meta``; an older one is refused with
  ``SMITHERS_MIGRATION_REQUIRED``. Tables go in the connection's current schema: a
  URL's ``?options=-csearch_path%3DNAME`` keeps several smithers logs in one database.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from ._chain import chain_hash
from ._codec import encode_event
from ._postgres_bulk import delete_tx, import_tx, origin_hash
from ._postgres_listen import Listener
from ._postgres_queue import PostgresWorkerTable
from ._postgres_side import PostgresSideTables, execute_whole
from ._postgres_sql import (
    APPEND,
    APPEND_NEW_RUN,
    APPEND_RUN_CHANGE,
    EVENT_COLUMNS,
    LAST,
    RUN_SELECT,
    create_schema,
    not_found,
    query_error,
    redact_url,
    run_record,
    stored,
    write_error,
)
from .errors import (
    NotOpenError,
    RunAlreadyExistsError,
    SeqConflictError,
    SmithersError,
)

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from psycopg import AsyncConnection

    from ._envelope import RunRecord, StoredEvent
    from ._sqlite_bulk import BulkDeletion, BulkRun, ImportOutcome
    from .events import Event

__all__ = ("PostgresEventStore",)

_LAST_ROWS_KEPT = 4096
"""Runs whose last ``(seq, hash)`` a store remembers before it starts over."""


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:  # pragma: no cover - the extra is in the test extra
        raise SmithersError(
            "A postgresql:// database needs the PostgreSQL driver, which is not installed.",
            code="INVALID_INPUT",
            hint="Install it with `pip install 'smithers-py[postgres]'`.",
        ) from e
    return psycopg


class PostgresEventStore(PostgresSideTables, PostgresWorkerTable):
    """`EventStore` on a PostgreSQL database (the module docstring says how).

    Open with `await PostgresEventStore.open(url)` (or ``async with``).

    Example:
        >>> url = "postgresql://localhost/db"
        >>> async with await PostgresEventStore.open(url) as s:  # doctest: +SKIP
        ...     await s.append("r1", [RunStatusChanged(...)], expected_seq=0)
    """

    def __init__(self, conn: AsyncConnection[Any], url: str, *, read_only: bool) -> None:
        self._conn: AsyncConnection[Any] | None = conn
        self._psycopg = _import_psycopg()
        self.url = url
        """The URL the store was opened with (may hold a password: print `display`)."""
        self.read_only = read_only
        """True if opened with ``read_only=True``: every write raises `DatabaseWriteError`."""
        # An asyncio lock, not anyio's: the engine's writer runs an append up to its
        # first suspension before entering a shield (`_shielded`), and anyio's lock
        # would suspend inside a cancel scope of its own, closed in another scope.
        self._lock = asyncio.Lock()
        self._listener: Listener | None = None
        self._last_rows: dict[str, tuple[int, bytes]] = {}
        """Each run's last ``(seq, hash)`` as this store appended it: the next append's
        chain link without a read. A writer elsewhere since then makes that append
        fail the unique ``(run_id, seq)`` constraint, a conflict, and drops the entry."""
        self._listen_lock = asyncio.Lock()

    @property
    def display(self) -> str:
        """The URL with its password hidden, for messages."""
        return redact_url(self.url)

    @classmethod
    async def open(
        cls, url: str, *, create: bool = True, read_only: bool = False
    ) -> PostgresEventStore:
        """Connect to `url` and check (with `create`, complete) the smithers schema.

        Awaits I/O: a connection and one transaction.

        Args:
            url: A ``postgresql://`` or ``postgres://`` URL (libpq's form, query
                parameters such as ``options=-csearch_path%3DNAME`` included).
            create: Create the tables if the database (schema) has none; without it,
                a database with none raises ``CLI_DB_NOT_FOUND``.
            read_only: Refuse every write (`DatabaseWriteError`); nothing is created.

        Returns:
            The open store; close it with `close` (or ``async with``).

        Raises:
            SmithersError: ``CLI_DB_NOT_FOUND`` if there are no smithers tables and
                `create` is False (or `read_only`); ``INVALID_INPUT`` if the driver
                (``smithers-py[postgres]``) is not installed.
            MigrationRequiredError: (``SMITHERS_MIGRATION_REQUIRED``) if the tables
                are of an older schema version; they are left unchanged.
            DatabaseQueryError: if the server cannot be reached or refuses the login.
        """
        psycopg = _import_psycopg()
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        except psycopg.Error as e:
            raise query_error(url, e) from e
        try:
            present = await create_schema(conn, url, create=create and not read_only)
        except psycopg.Error as e:
            await conn.close()
            raise query_error(url, e) from e
        except BaseException:
            await conn.close()
            raise
        if not present:
            await conn.close()
            raise not_found(url)
        return cls(conn, url, read_only=read_only)

    async def __aenter__(self) -> PostgresEventStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections. Awaits I/O; later calls raise `NotOpenError`."""
        conn, self._conn = self._conn, None
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        if conn is not None:
            await conn.close()

    async def wait_for_append(self, run_id: str | None = None, *, timeout_s: float) -> bool:
        """Wait until an append to `run_id` (None: any run) commits, from any process.

        LISTEN/NOTIFY (`_postgres_listen`) on a second connection, opened on the
        first call, which returns False at once (read again, then wait). Awaits I/O.

        Args:
            run_id: The run whose appends wake the caller; None for any.
            timeout_s: Longest wait, seconds (the fallback poll).

        Returns:
            True if woken by such an append; False at the timeout or on the first call.

        Raises:
            NotOpenError: if the store is closed.
        """
        if self._conn is None:
            raise NotOpenError("This PostgresEventStore is closed.")
        if self._listener is None:
            self._listener = Listener(self._psycopg, self.url)
        async with self._listen_lock:
            return await self._listener.wait(run_id, timeout_s)

    async def _ready(self) -> AsyncConnection[Any]:
        """The connection, fit for a new statement (called with `_lock` held).

        An operation cancelled mid-statement (or a server restart, a dropped network)
        can leave the connection inside a transaction or broken: the transaction is
        rolled back (nothing of it was committed), a broken connection replaced.
        """
        conn = self._conn
        if conn is None:
            raise NotOpenError("This PostgresEventStore is closed.")
        psycopg = self._psycopg
        status = conn.info.transaction_status
        if not conn.closed and not conn.broken:
            if status == psycopg.pq.TransactionStatus.IDLE:
                return conn
            if status in (
                psycopg.pq.TransactionStatus.INTRANS,
                psycopg.pq.TransactionStatus.INERROR,
            ):
                try:
                    await conn.rollback()
                    return conn
                except psycopg.Error:
                    pass
        with contextlib.suppress(psycopg.Error):
            await conn.close()
        try:
            self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        except psycopg.Error as e:
            raise query_error(self.url, e) from e
        return self._conn

    # ------------------------------------------------------------------ helpers

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with self._lock:
            conn = await self._ready()
            try:
                cur = await execute_whole(conn, sql, params)
                return await cur.fetchall()
            except self._psycopg.Error as e:
                raise query_error(self.url, e) from e

    async def _exec(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self.read_only:
            raise write_error(self.url, None)
        async with self._lock:
            conn = await self._ready()
            try:
                cur = await execute_whole(conn, sql, params)
                return int(cur.rowcount)
            except self._psycopg.Error as e:
                raise write_error(self.url, e) from e

    # ------------------------------------------------------------------ writes

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        status: str | None = None,
        workflow_name: str | None = None,
    ) -> int:
        """Append a batch in one transaction (see `EventStore.append`).

        Raises:
            RunAlreadyExistsError: if `expected_seq` is 0 and the run has events.
            SeqConflictError: if the run's last seq is not `expected_seq` (checked
                before the insert, and by the unique ``(run_id, seq)`` constraint).
            DatabaseWriteError: if the write failed; nothing of the batch was kept.
        """
        if not events:
            return expected_seq
        if self.read_only:
            raise write_error(self.url, None)
        types = [type(e).__name__ for e in events]
        payloads = [encode_event(e) for e in events]
        seqs = list(range(expected_seq + 1, expected_seq + 1 + len(events)))
        psycopg = self._psycopg
        async with self._lock:
            conn = await self._ready()
            known = self._last_rows.pop(run_id, None)
            try:
                if known is not None and known[0] == expected_seq:
                    prev = known[1]  # our own last append: a writer since fails the insert
                else:
                    cur = await conn.execute(LAST, (run_id,))
                    last = await cur.fetchone()
                    actual = int(last[0]) if last is not None else 0
                    if actual != expected_seq:
                        raise _conflict(run_id, expected_seq, actual)
                    if last is not None:
                        prev = bytes(last[1])
                    else:
                        prev = await origin_hash(conn, types[0], payloads[0])
                hashes = []
                for seq, type_name, payload in zip(seqs, types, payloads, strict=True):
                    prev = chain_hash(prev, seq, type_name, payload)
                    hashes.append(prev)
                params: dict[str, Any] = {
                    "run": run_id,
                    "seqs": seqs,
                    "types": types,
                    "ts": [e.timestamp_ms for e in events],
                    "payloads": payloads,
                    "hashes": hashes,
                }
                sql = APPEND
                if expected_seq == 0 or status is not None or workflow_name is not None:
                    sql = APPEND_NEW_RUN if expected_seq == 0 else APPEND_RUN_CHANGE
                    params.update(
                        workflow=workflow_name if expected_seq else (workflow_name or ""),
                        status=status if expected_seq else (status or "running"),
                        first_ms=events[0].timestamp_ms,
                        last_ms=events[-1].timestamp_ms,
                        last_seq=seqs[-1],
                    )
                # One statement in autocommit: one round trip, its own transaction.
                await execute_whole(conn, sql, params)
            except psycopg.errors.UniqueViolation as e:
                # Another writer committed this seq since we last looked: nothing of the
                # statement was kept; the conflict names the run's last seq now.
                try:
                    cur = await conn.execute(LAST, (run_id,))
                    now = await cur.fetchone()
                except psycopg.Error:
                    now = None
                raise _conflict(run_id, expected_seq, int(now[0]) if now else 0) from e
            except psycopg.Error as e:
                raise write_error(self.url, e) from e
            if len(self._last_rows) >= _LAST_ROWS_KEPT:
                self._last_rows.clear()  # many runs in one store: start over, never grow
            self._last_rows[run_id] = (seqs[-1], hashes[-1])
            return seqs[-1]

    # ------------------------------------------------------------------ reads

    async def read(
        self, run_id: str, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return the run's events with ``after_seq < seq <= upto_seq`` in seq order.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        sql = f"SELECT {EVENT_COLUMNS} FROM _smithers_events WHERE run_id = %s AND seq > %s"
        params: tuple[Any, ...] = (run_id, after_seq)
        if upto_seq is not None:
            sql += " AND seq <= %s"
            params += (upto_seq,)
        return [stored(r) for r in await self._fetch(sql + " ORDER BY seq", params)]

    async def read_chained(
        self, run_id: str, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return what `read` does, each row's chain `hash` set (see `EventStore.read_chained`).

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        sql = f"SELECT {EVENT_COLUMNS}, hash FROM _smithers_events WHERE run_id = %s AND seq > %s"
        params: tuple[Any, ...] = (run_id, after_seq)
        if upto_seq is not None:
            sql += " AND seq <= %s"
            params += (upto_seq,)
        out = []
        for r in await self._fetch(sql + " ORDER BY seq", params):
            event = stored(r)
            out.append(
                type(event)(
                    position=event.position,
                    run_id=event.run_id,
                    seq=event.seq,
                    type=event.type,
                    timestamp_ms=event.timestamp_ms,
                    data=event.data,
                    hash=bytes(r[6]),
                )
            )
        return out

    async def read_all(
        self, *, after_position: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        """Return events of all runs with ``position > after_position`` in global order.

        Gap-safe: a row committed later never has a position below one already read
        (see the module docstring).

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        sql = f"SELECT {EVENT_COLUMNS} FROM _smithers_events WHERE position > %s ORDER BY position"
        params: tuple[Any, ...] = (after_position,)
        if limit is not None:
            sql += " LIMIT %s"
            params += (limit,)
        return [stored(r) for r in await self._fetch(sql, params)]

    async def read_types(
        self,
        types: Sequence[str],
        *,
        run_ids: Sequence[str] | None = None,
        since_ms: int | None = None,
    ) -> list[StoredEvent]:
        """Return the events whose type is one of `types`, in global order.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        if not types or (run_ids is not None and not run_ids):
            return []
        sql = f"SELECT {EVENT_COLUMNS} FROM _smithers_events WHERE type = ANY(%s)"
        params: tuple[Any, ...] = (list(types),)
        if run_ids is not None:
            sql += " AND run_id = ANY(%s)"
            params += (list(run_ids),)
        if since_ms is not None:
            sql += " AND timestamp_ms >= %s"
            params += (since_ms,)
        return [stored(r) for r in await self._fetch(sql + " ORDER BY position", params)]

    async def last_seq(self, run_id: str) -> int:
        """Return the run's last seq (0 if none). Raises `DatabaseQueryError` on I/O failure."""
        rows = await self._fetch(
            "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = %s", (run_id,)
        )
        return int(rows[0][0])

    async def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run's index row or None. Raises `DatabaseQueryError` on I/O failure."""
        rows = await self._fetch(f"{RUN_SELECT} WHERE r.run_id = %s", (run_id,))
        return run_record(rows[0]) if rows else None

    async def list_runs(
        self, *, limit: int | None = None, statuses: Collection[str] | None = None
    ) -> list[RunRecord]:
        """Return runs newest first (see `EventStore.list_runs`).

        Raises:
            DatabaseQueryError: on I/O failure.
        """
        if statuses is not None and not statuses:
            return []
        sql = RUN_SELECT
        params: list[Any] = []
        if statuses is not None:
            sql += " WHERE r.status = ANY(%s)"
            params.append(sorted(set(statuses)))
        sql += " ORDER BY r.created_at_ms DESC, r.added DESC"
        if limit is not None:
            sql += " LIMIT %s"
            params.append(limit)
        return [run_record(r) for r in await self._fetch(sql, params)]

    # ------------------------------------------------------------------ whole runs

    async def import_runs(self, runs: Sequence[BulkRun]) -> list[ImportOutcome]:
        """Write whole runs' rows verbatim in one transaction (see `EventStore.import_runs`).

        Raises:
            RunAlreadyExistsError: if a run exists with different contents; nothing
                of any run was written.
            DatabaseWriteError: if the write failed; nothing was written.
        """
        if self.read_only:
            raise write_error(self.url, None)
        async with self._lock:
            conn = await self._ready()
            try:
                self._last_rows.clear()  # rows written outside `append`
                return await import_tx(conn, runs)
            except self._psycopg.Error as e:
                raise write_error(self.url, e) from e

    async def delete_runs(
        self, deletions: Sequence[BulkDeletion], *, audit_stream: str, audit_event: Event | None
    ) -> int:
        """Delete runs and record it in one transaction (see `EventStore.delete_runs`).

        Raises:
            SeqConflictError: if a run's last seq is not its `expected_last_seq`;
                nothing was deleted or recorded.
            DatabaseWriteError: if the write failed; nothing was deleted or recorded.
        """
        if self.read_only:
            raise write_error(self.url, None)
        async with self._lock:
            conn = await self._ready()
            try:
                self._last_rows.clear()  # rows written outside `append`
                return await delete_tx(conn, deletions, audit_stream, audit_event)
            except self._psycopg.Error as e:
                raise write_error(self.url, e) from e


def _conflict(run_id: str, expected_seq: int, actual: int) -> SeqConflictError:
    if expected_seq == 0:
        return RunAlreadyExistsError(run_id, actual_seq=max(actual, 1))
    return SeqConflictError(run_id, expected_seq=expected_seq, actual_seq=actual)
