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
import os
import sqlite3
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import aiosqlite
import anyio

from ._codec import encode_event
from ._envelope import Lease, RunRecord, StoredEvent
from ._inline import InlineConnection, is_busy, wal_checkpoint
from .errors import (
    DatabaseQueryError,
    DatabaseWriteError,
    RunAlreadyExistsError,
    SeqConflictError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .events import Event

__all__ = ("SQLiteEventStore", "SCHEMA_VERSION")

SCHEMA_VERSION = 2
"""`PRAGMA user_version` of the current schema. 1: events and runs index; 2: + leases
and checkpoints (side tables, created on open in databases of version 1)."""
_T = TypeVar("_T")

_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS _smithers_events (
    position INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    UNIQUE (run_id, seq)
)""",
    """CREATE TABLE IF NOT EXISTS _smithers_runs (
    run_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'running',
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    last_seq INTEGER NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS _smithers_runs_by_created ON _smithers_runs (created_at_ms)",
    # Operational side tables (not state: dropping them loses nothing of any run).
    """CREATE TABLE IF NOT EXISTS _smithers_leases (
    run_id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired_at_ms INTEGER NOT NULL,
    heartbeat_at_ms INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS _smithers_checkpoints (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID""",
)
"""Every statement of the schema, each idempotent; run in one transaction on open."""

_SCHEMA_OBJECTS = frozenset(
    {
        "_smithers_events",
        "_smithers_runs",
        "_smithers_runs_by_created",
        "_smithers_leases",
        "_smithers_checkpoints",
    }
)
"""Names in `sqlite_master` of a complete schema; open creates whatever is missing."""

_INSERT = (
    "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload) VALUES (?, ?, ?, ?, ?)"
)
_RUN_COLUMNS = "run_id, workflow_name, status, created_at_ms, updated_at_ms, last_seq"
_RUN_SELECT = (
    "SELECT r.run_id, r.workflow_name, r.status, r.created_at_ms, "
    "COALESCE(e.timestamp_ms, r.updated_at_ms), COALESCE(e.seq, r.last_seq) "
    "FROM _smithers_runs r LEFT JOIN _smithers_events e ON e.position = ("
    "SELECT position FROM _smithers_events WHERE run_id = r.run_id ORDER BY seq DESC LIMIT 1)"
)
"""A run's index row with its last seq and time read from its last event.

An append writes the row only when it starts the run or changes its status or name:
a row per commit more would cost a page in the WAL on every engine tick. So the
row's ``last_seq``/``updated_at_ms`` are those of its last status change, and reads
take them from the run's last event (one seek on the ``(run_id, seq)`` index)."""
_LEASE_COLUMNS = "run_id, owner_id, pid, host, acquired_at_ms, heartbeat_at_ms"

_WRITE_ERROR_CODES = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
)
"""Primary SQLite result codes that mean "cannot write here", as opposed to "not a usable
database". Extended codes reduce to them by their low byte: a WAL file in a read-only
directory fails with ``SQLITE_READONLY_DIRECTORY``, which is ``SQLITE_READONLY``."""

_LOCK_RETRIES = 6
"""How many times a write that found the database locked is retried (after busy_timeout)."""

_OPEN_RETRIES = 3
"""How many times opening retries after ``database is locked`` (20, 40, 80 ms apart)."""

_INLINE_MAX_ROWS = 64
"""Biggest batch (events) an append commits on the loop's thread; bigger ones hop."""
_INLINE_MAX_BYTES = 256 * 1024
"""Biggest batch (payload bytes) an append commits on the loop's thread."""
_INLINE_MAX_READ_ROWS = 1_024
"""Most rows a read may ask for to run on the loop's thread (~0.5 ms); more hop."""
_CHECKPOINT_PAGES = 4_000
"""WAL growth (estimated pages written by inline commits, ~16 MB) that asks the
connection thread for a checkpoint. SQLite's own ``wal_autocheckpoint`` is 1,000; each
checkpoint costs fsyncs that slow the inline writes racing it, so fewer, bigger ones."""
_RESTART_FRAMES = 3_000
"""WAL size (frames of a page each, ~12 MB) from which a checkpoint also makes the WAL
start over, holding appends for a moment (see `wal_checkpoint`)."""


def _is_write_fault(err: sqlite3.Error) -> bool:
    code = getattr(err, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _WRITE_ERROR_CODES


def _is_locked(err: sqlite3.Error) -> bool:
    return is_busy(err)


class SQLiteEventStore:
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
        self._inline_appends = inline_appends and inline is not None
        # True while the end of a WAL checkpoint runs in the connection thread:
        # appends meanwhile go through the thread too (see `wal_checkpoint`).
        self._checkpointing = False
        self.read_only = False
        """True if opened with ``read_only=True``: every write raises `DatabaseWriteError`."""
        self.uri: str | None = None
        """The SQLite URI a read-only store was opened with (``mode=ro``, and
        ``immutable=1`` when the file or its folder is not writable); None otherwise."""
        # Tables present in a read-only file (one of an older schema lacks the side
        # tables, which a read-only open cannot create): reads of a missing one are empty.
        self._tables: frozenset[str] = _SCHEMA_OBJECTS

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
    ) -> SQLiteEventStore:
        """Open (and create, unless `create` is False) the database at `path`.

        Awaits I/O: opens the file and creates whatever tables are missing (all of
        them in a new file; the side tables in a file of an older schema version).

        Args:
            path: The database file.
            durability: ``"normal"`` (``synchronous=NORMAL``: survives a process
                crash) or ``"full"`` (``synchronous=FULL``: also survives power loss).
            busy_timeout_ms: How long, in milliseconds, one statement waits for
                another connection's lock before it counts as locked.
            create: Create the file (and its parent directories) if missing.
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
            ValueError: if `max_page_count` is not positive.
            DatabaseQueryError: if the file is not a usable SQLite database (corrupt,
                encrypted, unreadable) or does not exist and `create` is False.
            DatabaseWriteError: if the tables cannot be created (read-only, disk full).
        """
        if max_page_count is not None and max_page_count < 1:
            raise ValueError(f"max_page_count must be a positive page count, not {max_page_count}")
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
        sync = "FULL" if durability == "full" else "NORMAL"
        for attempt in range(_OPEN_RETRIES + 1):
            try:
                inline = await store._call(
                    _init_schema, sync, busy_timeout_ms, max_page_count, str(db_path)
                )
                break
            except sqlite3.Error as e:
                # Two processes creating one file race for the switch to WAL, which
                # SQLite refuses at once (no busy wait) to the loser: try again.
                if attempt < _OPEN_RETRIES and _is_locked(e):
                    await anyio.sleep(0.02 * 2**attempt)
                    continue
                await conn.close()
                if _is_write_fault(e):
                    raise _write_error(db_path, e) from e
                raise _query_error(db_path, e) from e
        store._inline = inline
        store._inline_appends = durability == "normal" and inline is not None
        return store

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
        store.read_only = True
        store.uri = uri
        try:
            store._tables = await store._call(_check_read_only, busy_timeout_ms)
        except sqlite3.Error as e:
            await conn.close()
            raise _query_error(db_path, e) from e
        return store

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
        delay_s = 0.05
        for attempt in range(_LOCK_RETRIES + 1):
            try:
                return await self._call(fn, *args)
            except sqlite3.OperationalError as e:
                if not _is_locked(e) or attempt == _LOCK_RETRIES:
                    raise _write_error(self.path, e) from e
            except sqlite3.Error as e:
                raise _write_error(self.path, e) from e
            await anyio.sleep(delay_s)
            delay_s = min(delay_s * 2, 1.0)
        raise AssertionError("unreachable")  # pragma: no cover

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
        if len(events) > _INLINE_MAX_ROWS:
            # Encoded in the connection thread too: thousands of events (a first
            # render) take tens of ms to encode, which must not block the loop.
            batch = list(events)
            return await self._write(
                _encode_append_tx, run_id, batch, expected_seq, status, workflow_name
            )
        rows = _rows(run_id, events, expected_seq)
        inline = self._inline
        if inline is not None and self._inline_appends and not self._checkpointing:
            size = sum(len(r[4]) for r in rows)
            if size <= _INLINE_MAX_BYTES:
                try:
                    last = inline.try_run(
                        _append_tx, run_id, rows, expected_seq, status, workflow_name
                    )
                except sqlite3.Error as e:
                    raise _write_error(self.path, e) from e
                if last is not None:
                    if inline.grew(size):
                        self._checkpoint_soon()
                    return last
        # Contended, big, or durability "full": in the connection thread, which waits.
        return await self._write(_append_tx, run_id, rows, expected_seq, status, workflow_name)

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
        return [_stored(r) for r in await self._read(sql, params, small=small)]

    async def last_seq(self, run_id: str) -> int:
        """Return the run's last seq (0 if none). Raises `DatabaseQueryError` on I/O failure."""
        rows = await self._read(
            "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?",
            (run_id,),
            small=True,
        )
        return int(rows[0][0])

    async def get_run(self, run_id: str) -> RunRecord | None:
        """Return the run's index row or None. Raises `DatabaseQueryError` on I/O failure."""
        rows = await self._read(f"{_RUN_SELECT} WHERE r.run_id = ?", (run_id,), small=True)
        return _run_record(rows[0]) if rows else None

    async def list_runs(self, *, limit: int | None = None) -> list[RunRecord]:
        """Return runs newest first. Raises `DatabaseQueryError` on I/O failure."""
        sql = f"{_RUN_SELECT} ORDER BY r.created_at_ms DESC, r.rowid DESC"
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return [_run_record(r) for r in await self._read(sql, params)]

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
        if "_smithers_leases" not in self._tables:
            return None
        rows = await self._read(
            f"SELECT {_LEASE_COLUMNS} FROM _smithers_leases WHERE run_id = ?", (run_id,), small=True
        )
        return _lease(rows[0]) if rows else None

    async def list_leases(self) -> list[Lease]:
        """Return every lease by run id. Raises `DatabaseQueryError` on I/O failure."""
        if "_smithers_leases" not in self._tables:
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
        if "_smithers_checkpoints" not in self._tables:
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


# ---------------------------------------------------------------------- thread-side code


def _enter_wal(conn: sqlite3.Connection) -> None:
    """Switch a new database file to WAL, waiting out another connection doing the same.

    SQLite does not call the busy handler for this lock (two processes creating one
    database at once: the loser gets ``database is locked`` at once), so retry here.
    """
    for attempt in range(_LOCK_RETRIES * 10 + 1):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if not _is_locked(e) or attempt == _LOCK_RETRIES * 10:
                raise
            time.sleep(0.01 * (attempt + 1))  # in aiosqlite's thread, never the loop's


def _init_schema(
    conn: sqlite3.Connection,
    sync: str,
    busy_timeout_ms: int,
    max_page_count: int | None,
    path: str,
) -> InlineConnection | None:
    # Then, once the file is known good and in the same hop: the inline connection.
    _create_schema(conn, sync, busy_timeout_ms, max_page_count)
    return InlineConnection.open(
        path, max_page_count=max_page_count, checkpoint_pages=_CHECKPOINT_PAGES
    )


def _create_schema(
    conn: sqlite3.Connection, sync: str, busy_timeout_ms: int, max_page_count: int | None
) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if max_page_count is not None:
        conn.execute(f"PRAGMA max_page_count = {int(max_page_count)}")
    # Reading the schema first turns a non-SQLite file into an early, clear error.
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master").fetchall()}
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        _enter_wal(conn)
    conn.execute(f"PRAGMA synchronous = {sync}")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    # Only a write lock when something is missing: opening an up-to-date file (the
    # common case, and the only one a reader of a read-only file can manage) writes
    # nothing and never waits for another process's write transaction.
    if _SCHEMA_OBJECTS.issubset(names) and version >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA:
            conn.execute(statement)
        # Re-read under the lock: never lower the version a newer smithers wrote.
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _check_read_only(conn: sqlite3.Connection, busy_timeout_ms: int) -> frozenset[str]:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA query_only = ON")
    # Reading the schema turns a non-SQLite file (or an unreadable WAL) into an error now.
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master").fetchall()}
    return frozenset(names & _SCHEMA_OBJECTS)


def _fetchall(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


def _execute_write(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> int:
    # One statement in autocommit mode is its own transaction: all of it or nothing.
    return conn.execute(sql, params).rowcount


def _rows(
    run_id: str, events: Sequence[Event], expected_seq: int
) -> list[tuple[str, int, str, int, bytes]]:
    return [
        (run_id, expected_seq + i, type(e).__name__, e.timestamp_ms, encode_event(e))
        for i, e in enumerate(events, 1)
    ]


def _encode_append_tx(
    conn: sqlite3.Connection,
    run_id: str,
    events: list[Event],
    expected_seq: int,
    status: str | None,
    workflow_name: str | None,
) -> int:
    rows = _rows(run_id, events, expected_seq)
    return _append_tx(conn, run_id, rows, expected_seq, status, workflow_name)


def _append_tx(
    conn: sqlite3.Connection,
    run_id: str,
    rows: list[tuple[str, int, str, int, bytes]],
    expected_seq: int,
    status: str | None,
    workflow_name: str | None,
) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        actual = conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?", (run_id,)
        ).fetchone()[0]
        if actual != expected_seq:
            if expected_seq == 0:
                raise RunAlreadyExistsError(run_id, actual_seq=actual)
            raise SeqConflictError(run_id, expected_seq=expected_seq, actual_seq=actual)
        conn.executemany(_INSERT, rows)
        last_seq = rows[-1][1]
        first_ms, last_ms = rows[0][3], rows[-1][3]
        if expected_seq == 0:
            conn.execute(
                f"INSERT OR REPLACE INTO _smithers_runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, workflow_name or "", status or "running", first_ms, last_ms, last_seq),
            )
        elif status is not None or workflow_name is not None:
            # Only then: the last seq and time are read from the log (`_RUN_SELECT`).
            conn.execute(
                "UPDATE _smithers_runs SET last_seq = ?, updated_at_ms = ?, "
                "status = COALESCE(?, status), workflow_name = COALESCE(?, workflow_name) "
                "WHERE run_id = ?",
                (last_seq, last_ms, status, workflow_name, run_id),
            )
        conn.execute("COMMIT")
        return last_seq
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _drop_outcome(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "exception was never retrieved" warning


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        position=row[0],
        run_id=row[1],
        seq=row[2],
        type=row[3],
        timestamp_ms=row[4],
        data=bytes(row[5]),
    )


def _run_record(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        workflow_name=row[1],
        status=row[2],
        created_at_ms=row[3],
        updated_at_ms=row[4],
        last_seq=row[5],
    )


def _lease(row: Any) -> Lease:
    return Lease(
        run_id=row[0],
        owner_id=row[1],
        pid=row[2],
        host=row[3],
        acquired_at_ms=row[4],
        heartbeat_at_ms=row[5],
    )


def _writable(path: Path) -> bool:
    """True if `path` may be written: a write permission bit set and `os.access` agrees.

    The bits count even for root (whom `os.access` lets write anything): a file or
    folder an operator made read-only is treated as read-only.
    """
    try:
        return bool(path.stat().st_mode & 0o222) and os.access(path, os.W_OK)
    except OSError:
        return False


def _read_only_uri(path: Path) -> str:
    """Return the SQLite URI opening `path` read-only (``mode=ro``).

    Adds ``immutable=1`` (no locks, no -wal/-shm created: nothing written at all)
    when the file or its folder is not writable, unless a non-empty -wal sidecar
    holds commits not yet in the file, which ``immutable`` would ignore: then plain
    ``mode=ro``, which reads them (it needs the -shm sidecar or a writable folder).
    """
    absolute = path.resolve()
    uri = f"file:{urllib.parse.quote(str(absolute))}?mode=ro"
    if _writable(absolute) and _writable(absolute.parent):
        return uri
    wal = absolute.with_name(absolute.name + "-wal")
    try:
        pending = wal.stat().st_size > 0
    except OSError:
        pending = False
    return uri if pending else uri + "&immutable=1"


def _is_read_only(path: Path, e: BaseException | None) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    if e is None or (isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_READONLY):
        return True
    return not (_writable(path) and _writable(path.parent))


def _write_error(path: Path, e: BaseException | None) -> DatabaseWriteError:
    if _is_read_only(path, e):
        reason = str(e) if e is not None else "opened read-only"
        return DatabaseWriteError(
            f"The database {path} is read-only ({reason}); nothing of this write was kept.",
            details={"dbPath": str(path), "reason": reason, "readOnly": True},
            hint="Read commands (ps, inspect, events, timeline, state, diff, verify) work "
            "on it; to write, make the file and its folder writable, or copy the file to "
            "a writable folder and pass --db COPY.",
        )
    return DatabaseWriteError(
        f"Could not write to the database {path}: {e}. Nothing of this write was kept. "
        "Check free disk space and file permissions, and that no other process holds a "
        "long write lock.",
        details={"dbPath": str(path), "reason": str(e)},
    )


def _query_error(path: Path, e: BaseException) -> DatabaseQueryError:
    return DatabaseQueryError(
        f"Could not read the database {path}: {e}. Verify the file with "
        f"`sqlite3 {path} 'PRAGMA integrity_check'`; if it is another process's file, "
        "unreadable, or a copy missing its -wal/-shm sidecars, fix that, else restore "
        "from backup or start with a fresh --db.",
        details={"dbPath": str(path), "reason": str(e)},
    )
