"""The default event store: one SQLite file in WAL mode, driven through aiosqlite.

A call that goes to aiosqlite's connection thread costs one hop (~0.1 ms) plus its
work; a whole transaction runs as one function there. The engine's one write per tick
and small reads usually cost no hop: with ``durability="normal"`` an append of up to
64 events is committed on the calling (event loop) thread through a second connection
(`InlineConnection`) when the write lock is free at once (~0.03-0.05 ms), and a read
of a bounded number of rows (a point lookup, up to 1,024 events) runs there too.
Whatever could block the loop goes to the thread instead: a lock held by another
writer (waited on and retried there), ``durability="full"`` (an fsync per commit),
big batches and big reads, side-table writes, and WAL checkpoints (the inline
connection never checkpoints; the store has the thread do one as the WAL grows).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiosqlite
import anyio

from ._envelope import RunRecord, StoredEvent
from ._inline import InlineConnection, wal_checkpoint
from ._lockholder import find_lock_holder
from ._sqlite_chain import chained_select, has_chain_column
from ._sqlite_queue import SQLiteWorkerTable
from ._sqlite_side import SQLiteSideTables
from ._sqlite_sql import (
    _INLINE_MAX_BYTES,
    _INLINE_MAX_READ_ROWS,
    _INLINE_MAX_ROWS,
    _LOCK_RETRY_MAX_S,
    _OPEN_RETRIES,
    _RESTART_FRAMES,
    _RUN_SELECT,
    _SCHEMA_OBJECTS,
    SCHEMA_VERSION,
    LockWatch,
    WriteGate,
    _append_tx,
    _bounded_write,
    _check_read_only,
    _drop_outcome,
    _encode_append_tx,
    _fetchall,
    _init_schema,
    _is_locked,
    _is_write_fault,
    _lock_error,
    _query_error,
    _read_only_uri,
    _rows,
    _run_record,
    _stored,
    _write_error,
    lock_timeout_from_env,
)
from .errors import (
    DatabaseQueryError,
    InvalidArgumentError,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Collection, Sequence

    from .events import Event

__all__ = ("SQLiteEventStore", "SCHEMA_VERSION")

_LAST_ROWS_KEPT = 1_024
"""Runs whose last ``(seq, hash)`` a store remembers (cleared past that, never grown)."""

_T = TypeVar("_T")

_EVENTS = "_smithers_events"
_RUNS = "_smithers_runs"


class SQLiteEventStore(SQLiteSideTables, SQLiteWorkerTable):
    """`EventStore` on a SQLite file.

    Open with `await SQLiteEventStore.open(path)` (or ``async with``). WAL journal,
    ``synchronous=NORMAL`` by default (survives a process crash; ``durability="full"``
    also survives power loss), a busy timeout, and ``database is locked`` retried with
    backoff before `DatabaseWriteError` (``DB_WRITE_FAILED``).

    Example:
        >>> async with await SQLiteEventStore.open("runs.db") as store:  # doctest: +SKIP
        ...     await store.append("r1", [RunStatusChanged(...)], expected_seq=0)
    """

    def __init__(
        self,
        conn: aiosqlite.Connection,
        path: Path,
        *,
        inline: InlineConnection | None = None,
        inline_appends: bool = False,
    ) -> None:
        self._conn = conn
        self.path = path
        # Small reads, and with durability "normal" small appends, on the loop's
        # thread (see `_inline`); None: everything in the connection thread.
        self._inline = inline
        self._last_rows: dict[str, tuple[int, bytes]] = {}
        # Each run's last (seq, chain hash) as this store's last append left it.
        self._inline_appends = inline_appends and inline is not None
        # True while the end of a WAL checkpoint runs in the connection thread:
        # appends meanwhile go through the thread too (see `wal_checkpoint`).
        self._checkpointing = False
        self.read_only = False
        """True if opened with ``read_only=True``: every write raises `DatabaseWriteError`."""
        self.uri: str | None = None
        """The SQLite URI a read-only store was opened with (``mode=ro``, and
        ``immutable=1`` when the file or its folder is not writable); None otherwise."""
        # Tables present: a read-only file of an older schema lacks the side tables
        # (which a read-only open cannot create), an empty file opened without `create`
        # has none (the first write creates them): reads of a missing one are empty.
        self._tables: frozenset[str] = _SCHEMA_OBJECTS
        self._lock_watch = LockWatch()
        self.lock_timeout_ms = lock_timeout_from_env()
        """How long (ms) a write waits in all for another connection's write lock (see
        `open`)."""
        # Whether the events table has the chain's hash column (None: not looked yet).
        self._chained: bool | None = None
        # (synchronous, busy_timeout_ms, max_page_count) of `open`, for `_init`.
        self._setup: tuple[str, int, int | None] = ("NORMAL", 5_000, None)

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        durability: Literal["normal", "full"] = "normal",
        busy_timeout_ms: int = 5_000,
        create: bool = True,
        max_page_count: int | None = None,
        read_only: bool = False,
        lock_timeout_ms: int | None = None,
    ) -> SQLiteEventStore:
        """Open (and create, unless `create` is False) the database at `path`.

        Awaits I/O: opens the file and creates whatever tables are missing (all of
        them in a new file; the side tables in a file of an older schema version).

        Args:
            path: The database file.
            durability: ``"normal"`` (``synchronous=NORMAL``: survives a process
                crash) or ``"full"`` (``synchronous=FULL``: also survives power loss).
            busy_timeout_ms: How long, in milliseconds, a read or the schema's
                creation waits for another connection's lock before it counts as locked.
            lock_timeout_ms: How long, in milliseconds, a write waits in all for
                another connection's write lock (counted from its call, retries
                included; the same for every write, at a run's start or mid-run) before
                it fails with `DatabaseWriteError` naming the lock and, when found, the
                process holding it. None: ``SMITHERS_LOCK_TIMEOUT_MS`` if set, else
                `DEFAULT_LOCK_TIMEOUT_MS` (30 s).
            create: Create the file (and its parent directories) if missing, and the
                schema in a file that has none (0 bytes, or an empty database). Without
                it, such a file is left as it is: reads find no runs, and the first
                write creates the schema.
            max_page_count: A quota: the most pages (of ``PRAGMA page_size`` bytes,
                4096 by default) this connection lets the file grow to; a write that
                needs more fails with `DatabaseWriteError` as on a full disk. Useful
                to cap the database's growth and to test full-disk handling. SQLite
                never sets it below the file's current size. None: no quota.
            read_only: Open the existing file for reading only (`create` is then
                ignored): SQLite ``mode=ro``, plus ``immutable=1`` when the file or
                its folder is not writable (no permission bit, or `os.access` says
                so), so no -wal/-shm is created and a copy on a read-only mount can
                be read. Writes raise `DatabaseWriteError`. No schema change is made;
                reads of the side tables of an older file are empty.

        Returns:
            The open store; close it with `close` (or ``async with``).

        Raises:
            ValueError: if `max_page_count` is not positive or `lock_timeout_ms` is
                negative.
            ForeignDatabaseError: (``DB_NOT_SMITHERS``) if the file is another
                application's database: tables, but no smithers schema. It is left
                unchanged (no table added, journal mode kept), read-only or not.
            DatabaseQueryError: if the file is not a usable SQLite database (corrupt,
                encrypted, unreadable) or does not exist and `create` is False.
            DatabaseWriteError: if the tables cannot be created (read-only, disk full).
        """
        if max_page_count is not None and max_page_count < 1:
            raise InvalidArgumentError(
                f"max_page_count must be a positive page count, not {max_page_count}"
            )
        if lock_timeout_ms is not None and lock_timeout_ms < 0:
            raise InvalidArgumentError(f"lock_timeout_ms must be >= 0, not {lock_timeout_ms}")
        db_path = Path(path)
        if read_only:
            return await cls._open_read_only(db_path, busy_timeout_ms)
        # A stat before the first thread hop: cheap, and it keeps `create=False` honest.
        if not create and not db_path.exists():  # noqa: ASYNC240
            raise DatabaseQueryError(f"No database at {db_path}.", details={"dbPath": str(db_path)})
        if create:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(
                str(db_path), isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise _query_error(db_path, e) from e
        store = cls(conn, db_path)
        if lock_timeout_ms is not None:
            store.lock_timeout_ms = lock_timeout_ms
        store._setup = (
            "FULL" if durability == "full" else "NORMAL",
            busy_timeout_ms,
            max_page_count,
        )
        try:
            await store._init(create=create)
        except BaseException:
            await conn.close()
            raise
        return store

    async def _init(self, *, create: bool) -> None:
        # Sets the connection up and completes the schema (see `_init_schema`).
        sync, busy_timeout_ms, max_page_count = self._setup
        db_path = self.path
        for attempt in range(_OPEN_RETRIES + 1):
            try:
                inline, tables = await self._call(
                    _init_schema, sync, busy_timeout_ms, max_page_count, str(db_path), create
                )
                break
            except sqlite3.Error as e:
                # Two processes creating one file race for the switch to WAL, which
                # SQLite refuses at once (no busy wait) to the loser: try again.
                if attempt < _OPEN_RETRIES and _is_locked(e):
                    await anyio.sleep(0.02 * 2**attempt)
                    continue
                if _is_write_fault(e):
                    raise _write_error(db_path, e) from e
                raise _query_error(db_path, e) from e
        self._tables = tables
        self._inline = inline
        self._inline_appends = sync == "NORMAL" and inline is not None

    @classmethod
    async def _open_read_only(cls, db_path: Path, busy_timeout_ms: int) -> SQLiteEventStore:
        if not db_path.is_file():  # noqa: ASYNC240 - a stat, before any thread hop
            raise DatabaseQueryError(f"No database at {db_path}.", details={"dbPath": str(db_path)})
        uri = _read_only_uri(db_path)
        try:
            conn = await aiosqlite.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise _query_error(db_path, e) from e
        store = cls(conn, db_path)
        store._setup = ("NORMAL", busy_timeout_ms, None)
        store.read_only = True
        store.uri = uri
        try:
            store._tables = await store._call(_check_read_only, busy_timeout_ms, str(db_path))
        except sqlite3.Error as e:
            await conn.close()
            raise _query_error(db_path, e) from e
        except BaseException:
            await conn.close()
            raise
        return store

    async def _tables_now(self) -> frozenset[str]:
        # A file with no schema when opened may have got one since (another process's
        # first write): look again, so readers see what it wrote. Cheap once it has.
        if _EVENTS not in self._tables:
            if self.read_only:
                try:
                    self._tables = await self._call(
                        _check_read_only, self._setup[1], str(self.path)
                    )
                except sqlite3.Error as e:
                    raise _query_error(self.path, e) from e
            else:
                await self._init(create=False)
        return self._tables

    async def __aenter__(self) -> SQLiteEventStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        # One hop to aiosqlite's connection thread for a whole transaction. aiosqlite
        # has no public "run this function with the connection" call; `_execute` is
        # the queue its own methods use, and `_conn` its sqlite3 connection.
        conn = self._conn
        result: _T = await conn._execute(fn, conn._conn, *args)  # type: ignore[no-untyped-call]
        return result

    async def close(self) -> None:
        """Close the connections. Awaits I/O."""
        inline, self._inline, self._inline_appends = self._inline, None, False
        if inline is not None:
            # Queued to the connection thread before aiosqlite's own close (closing it
            # may wait for the inline lock, and is not the last connection: no
            # checkpoint).
            self._submit(inline.close)
        await self._conn.close()

    # ------------------------------------------------------------------ writes

    async def _write(self, fn: Callable[..., _T], *args: Any) -> _T:
        # Runs one write transaction; `database is locked` is retried with backoff,
        # every other sqlite3 error becomes `DatabaseWriteError` at once.
        if self.read_only:
            raise _write_error(self.path, None)
        began = time.monotonic()
        deadline = began + self.lock_timeout_ms / 1000
        if _EVENTS not in self._tables:
            await self._init(create=True)
        busy_ms = self._setup[1]
        gate = WriteGate()
        delay_s = 0.01
        while True:
            try:
                return await self._call(
                    _bounded_write, began, deadline, busy_ms, gate, self._lock_watch, fn, *args
                )
            except sqlite3.OperationalError as e:
                if not _is_locked(e):
                    raise _write_error(self.path, e) from e
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    raise await self._lock_error(e, began) from e
            except sqlite3.Error as e:
                raise _write_error(self.path, e) from e
            except BaseException:
                # Cancelled (or failed) before the thread began it: it must not run
                # later, holding up this store's next writes and its close.
                gate.abandoned = True
                raise
            # Locked without a wait (no busy handler for this lock): try again soon.
            await anyio.sleep(min(delay_s, left_s))
            delay_s = min(delay_s * 2, _LOCK_RETRY_MAX_S)

    async def _lock_error(self, e: sqlite3.Error, began: float) -> Exception:
        waited_ms = int((time.monotonic() - began) * 1000)
        holder = await anyio.to_thread.run_sync(find_lock_holder, self.path)
        return _lock_error(
            self.path, e, waited_ms=waited_ms, lock_timeout_ms=self.lock_timeout_ms, holder=holder
        )

    async def append(
        self,
        run_id: str,
        events: Sequence[Event],
        *,
        expected_seq: int,
        status: str | None = None,
        workflow_name: str | None = None,
    ) -> int:
        """Append a batch in one ``BEGIN IMMEDIATE`` transaction (see `EventStore.append`).

        Raises:
            RunAlreadyExistsError: if `expected_seq` is 0 and the run has events.
            SeqConflictError: if the run's last seq is not `expected_seq`.
            DatabaseWriteError: if the database stayed locked through every retry, the
                disk is full or the file read-only; nothing of the batch was kept.
        """
        if not events:
            return expected_seq
        if _EVENTS not in self._tables and not self.read_only:
            await self._init(create=True)
        known = self._last_rows.get(run_id)
        if len(events) > _INLINE_MAX_ROWS:
            # Encoded in the connection thread too: thousands of events (a first
            # render) take tens of ms to encode, which must not block the loop.
            batch = list(events)
            done = await self._write(
                _encode_append_tx, run_id, batch, expected_seq, status, workflow_name, known
            )
            return self._appended(run_id, done)
        rows = _rows(run_id, events, expected_seq)
        inline = self._inline
        if inline is not None and self._inline_appends and not self._checkpointing:
            size = sum(len(r[4]) for r in rows)
            if size <= _INLINE_MAX_BYTES:
                try:
                    last = inline.try_run(
                        _append_tx, run_id, rows, expected_seq, status, workflow_name, known
                    )
                except sqlite3.Error as e:
                    raise _write_error(self.path, e) from e
                if last is not None:
                    if inline.grew(size):
                        self._checkpoint_soon()
                    return self._appended(run_id, last)
        # Contended, big, or durability "full": in the connection thread, which waits.
        done = await self._write(
            _append_tx, run_id, rows, expected_seq, status, workflow_name, known
        )
        return self._appended(run_id, done)

    def _appended(self, run_id: str, last: tuple[int, bytes]) -> int:
        """Remember the run's new last ``(seq, hash)`` (the next append's chain link)."""
        if len(self._last_rows) >= _LAST_ROWS_KEPT and run_id not in self._last_rows:
            self._last_rows.clear()  # many runs in one store: start over, never grow
        self._last_rows[run_id] = last
        return last[0]

    def _submit(self, fn: Callable[[], object]) -> None:
        # Queues `fn` to aiosqlite's connection thread without waiting for it. Its
        # queue takes (future, function) pairs; the future's outcome is dropped (it is
        # set before `close` returns: the close is queued after it). aiosqlite < 0.22
        # needs a real future there, not None.
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(_drop_outcome)
        self._conn._tx.put_nowait((future, fn))

    def _checkpoint_soon(self) -> None:
        # Queued to the connection thread; appends go on meanwhile (see `wal_checkpoint`).
        aio = self._conn

        def hold() -> None:
            self._checkpointing = True

        def checkpoint() -> None:
            try:
                wal_checkpoint(aio._connection, restart_frames=_RESTART_FRAMES, hold=hold)
            finally:
                self._checkpointing = False

        self._submit(checkpoint)

    # ------------------------------------------------------------------ reads

    async def _read(self, sql: str, params: tuple[Any, ...], *, small: bool = False) -> list[Any]:
        # A `small` read (a bounded number of rows) runs on this thread when the
        # inline connection is free; any other, in the connection thread.
        try:
            inline = self._inline
            if small and inline is not None:
                rows = inline.try_run(_fetchall, sql, params)
                if rows is not None:
                    return rows
            return await self._call(_fetchall, sql, params)
        except sqlite3.Error as e:
            raise _query_error(self.path, e) from e

    async def read(
        self, run_id: str, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return the run's events with ``after_seq < seq <= upto_seq`` in seq order.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        # Not the run_id column: it is `run_id` (one str object fewer per row).
        sql = (
            "SELECT position, seq, type, timestamp_ms, payload FROM _smithers_events "
            "WHERE run_id = ? AND seq > ?"
        )
        params: tuple[Any, ...] = (run_id, after_seq)
        if upto_seq is not None:
            sql += " AND seq <= ?"
            params += (upto_seq,)
        small = upto_seq is not None and upto_seq - after_seq <= _INLINE_MAX_READ_ROWS
        if _EVENTS not in await self._tables_now():
            return []
        rows = await self._read(sql + " ORDER BY seq", params, small=small)
        return [
            StoredEvent(
                position=r[0],
                run_id=run_id,
                seq=r[1],
                type=r[2],
                timestamp_ms=r[3],
                data=r[4],
            )
            for r in rows
        ]

    async def read_chained(
        self, run_id: str, *, after_seq: int = 0, upto_seq: int | None = None
    ) -> list[StoredEvent]:
        """Return what `read` does, each row's chain `hash` set (see `EventStore.read_chained`).

        In a database of schema version 2 opened read-only (no chain computed yet:
        a writable open computes it) every `hash` is ``b""``.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        if _EVENTS not in await self._tables_now():
            return []
        if self._chained is None:
            try:
                self._chained = bool(await self._call(has_chain_column))
            except sqlite3.Error as e:
                raise _query_error(self.path, e) from e
        sql, params = chained_select(run_id, after_seq, upto_seq, with_hash=self._chained)
        return [
            StoredEvent(
                position=r[0],
                run_id=run_id,
                seq=r[1],
                type=r[2],
                timestamp_ms=r[3],
                data=bytes(r[4]),
                hash=bytes(r[5]),
            )
            for r in await self._read(sql, params)
        ]

    async def read_all(
        self, *, after_position: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        """Return events of all runs with ``position > after_position`` in global order.

        Raises:
            DatabaseQueryError: if the database cannot be read.
        """
        sql = (
            "SELECT position, run_id, seq, type, timestamp_ms, payload FROM _smithers_events "
            "WHERE position > ? ORDER BY position"
        )
        params: tuple[Any, ...] = (after_position,)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        small = limit is not None and limit <= _INLINE_MAX_READ_ROWS
        if _EVENTS not in await self._tables_now():
            return []
        return [_stored(r) for r in await self._read(sql, params, small=small)]

    async def last_seq(self, run_id: str) -> int:
        """Return the run's last seq (0 if none). Raises `DatabaseQueryError` on I/O failure."""
        if _EVENTS not in await self._tables_now():
            return 0
        rows = await self._read(
            "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?",
            (run_id,),
            small=True,
        )
        return int(rows[0][0])

    async def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run's index row or None. Raises `DatabaseQueryError` on I/O failure."""
        if _RUNS not in await self._tables_now():
            return None
        rows = await self._read(f"{_RUN_SELECT} WHERE r.run_id = ?", (run_id,), small=True)
        return _run_record(rows[0]) if rows else None

    async def list_runs(
        self, *, limit: int | None = None, statuses: Collection[str] | None = None
    ) -> list[RunRecord]:
        """Return runs newest first (see `EventStore.list_runs`).

        Raises:
            DatabaseQueryError: on I/O failure.
        """
        if _RUNS not in await self._tables_now() or (statuses is not None and not statuses):
            return []
        sql = _RUN_SELECT
        params: list[Any] = []
        if statuses is not None:
            wanted = sorted(set(statuses))
            sql += f" WHERE r.status IN ({', '.join('?' * len(wanted))})"
            params.extend(wanted)
        sql += " ORDER BY r.created_at_ms DESC, r.rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [_run_record(r) for r in await self._read(sql, tuple(params))]
