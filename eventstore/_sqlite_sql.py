"""The SQLite store's SQL: schema, transactions run on a connection, rows, error translation.

Functions here take a plain `sqlite3.Connection` and run on whichever thread holds it
(aiosqlite's connection thread, or the event loop's for the inline connection); the
store (`_sqlite.SQLiteEventStore`) decides which.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from ._chain import chain_hash
from ._codec import encode_event
from ._envelope import Lease, RunRecord, StoredEvent
from ._inline import InlineConnection, is_busy
from ._sqlite_chain import EVENTS_DDL, add_chain_column, chain_origin_hash
from .errors import (
    DatabaseQueryError,
    DatabaseWriteError,
    ForeignDatabaseError,
    RunAlreadyExistsError,
    SeqConflictError,
)

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Sequence
    from pathlib import Path

    from ._lockholder import LockHolder
    from .events import Event

__all__ = ("SCHEMA_VERSION",)

SCHEMA_VERSION = 3
"""`PRAGMA user_version` of the current schema. 1: events and runs index; 2: + leases
and checkpoints (side tables, created on open in databases of version 1); 3: + the
events' ``hash`` column (the hash chain, `chain_hash`), computed on open for the rows
of an older database (`add_chain_column`)."""

_SCHEMA: tuple[str, ...] = (
    EVENTS_DDL.format(name="_smithers_events"),
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
    "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload, hash) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_LAST = "SELECT seq, hash FROM _smithers_events WHERE run_id = ? ORDER BY seq DESC LIMIT 1"
"""The run's last seq and hash: one seek on the ``(run_id, seq)`` index, one on the table."""
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

DEFAULT_LOCK_TIMEOUT_MS = 30_000
"""How long (ms) a write waits in all for another connection's write lock by default.

Counted from the write's call (time queued behind this store's other writes included),
the same for a run's first append and its last, a lease heartbeat or a cancel; then
the write fails with `DatabaseWriteError` (``DB_WRITE_FAILED``) naming the lock and,
when found, the process holding it. Below the stale threshold (60 s), so a run whose
writes fail for the lock stops before another process may take it over. Overridden by
the environment variable ``SMITHERS_LOCK_TIMEOUT_MS`` (`LOCK_TIMEOUT_ENV`), then by
``SQLiteEventStore.open(lock_timeout_ms=...)``."""

LOCK_TIMEOUT_ENV = "SMITHERS_LOCK_TIMEOUT_MS"
"""Environment variable setting the lock wait (ms, an integer >= 0) of every store this
process opens without an explicit `lock_timeout_ms`; an unparsable value is ignored."""

_LOCK_RETRY_MAX_S = 0.25
"""Longest pause (seconds) between two tries of a write that found the lock held
without waiting for it (SQLite calls no busy handler for some locks)."""

_WAL_RETRIES = 60
"""How many times the switch of a new file to WAL is retried (10 ms more apart each)."""

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


def _enter_wal(conn: sqlite3.Connection) -> None:
    """Switch a new database file to WAL, waiting out another connection doing the same.

    SQLite does not call the busy handler for this lock (two processes creating one
    database at once: the loser gets ``database is locked`` at once), so retry here.
    """
    for attempt in range(_WAL_RETRIES + 1):
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if not _is_locked(e) or attempt == _WAL_RETRIES:
                raise
            time.sleep(0.01 * (attempt + 1))  # in aiosqlite's thread, never the loop's


def _schema_names(conn: sqlite3.Connection, path: str) -> set[str]:
    """The names in `sqlite_master`; refuses another application's database.

    Reading the schema first also turns a non-SQLite file into an early, clear error.

    Raises:
        ForeignDatabaseError: if the file holds objects but none of the smithers schema.
    """
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master").fetchall()}
    if names and not names & _SCHEMA_OBJECTS:
        raise ForeignDatabaseError(path, sorted(names))
    return names


def lock_timeout_from_env(default_ms: int = DEFAULT_LOCK_TIMEOUT_MS) -> int:
    """Return the lock wait (ms) ``SMITHERS_LOCK_TIMEOUT_MS`` sets, else `default_ms`.

    A value that is not an integer >= 0 is ignored (`default_ms`). Reads the environment.
    """
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    try:
        value = int(raw)
    except ValueError:
        return default_ms
    return value if value >= 0 else default_ms


class WriteGate:
    """Tells a write queued to the connection thread that its caller stopped waiting."""

    __slots__ = ("abandoned",)

    def __init__(self) -> None:
        self.abandoned = False


class LockWatch:
    """A store's memory of its last write that gave up waiting for the lock.

    Writes queued behind it (called before it gave up) were waiting for the same lock:
    they get one try, not a wait of their own, so a store's writes all fail within one
    lock wait of their calls rather than one after another.
    """

    __slots__ = ("gave_up_at",)

    def __init__(self) -> None:
        self.gave_up_at = float("-inf")
        """`time.monotonic` instant the last write gave up waiting for the lock."""


class WriteAbandonedError(Exception):
    """A queued write was skipped: its caller was cancelled before it began."""


def _bounded_write(
    conn: sqlite3.Connection,
    began: float,
    deadline: float,
    busy_timeout_ms: int,
    gate: WriteGate,
    watch: LockWatch,
    fn: Any,
    *args: Any,
) -> Any:
    """Run the write ``fn(conn, *args)``, waiting for a lock at most until `deadline`.

    `began` and `deadline` are `time.monotonic` instants (the write's call, and the end
    of its lock wait); the connection's busy timeout is set to what is left (0 when
    past, or when a write of this store called later gave up meanwhile: `watch`; then
    one try), then back to `busy_timeout_ms`. A write whose caller stopped waiting
    before it began (`gate`) is skipped.
    """
    if gate.abandoned:
        raise WriteAbandonedError
    now = time.monotonic()
    left_ms = 0 if began <= watch.gave_up_at else max(int((deadline - now) * 1000), 0)
    conn.execute(f"PRAGMA busy_timeout = {left_ms}")
    try:
        return fn(conn, *args)
    except sqlite3.OperationalError as e:
        if is_busy(e) and time.monotonic() >= deadline:
            watch.gave_up_at = time.monotonic()
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")


def _init_schema(
    conn: sqlite3.Connection,
    sync: str,
    busy_timeout_ms: int,
    max_page_count: int | None,
    path: str,
    create: bool,
) -> tuple[InlineConnection | None, frozenset[str]]:
    """Set up `conn` and, if `create` or the file has the schema, complete the schema.

    Returns the inline connection (None: none) and the schema's tables present. A file
    with no schema at all (0 bytes, or an empty database) opened without `create` is
    left as it is (no WAL switch, no table): no tables, no inline connection.
    """
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if max_page_count is not None:
        conn.execute(f"PRAGMA max_page_count = {int(max_page_count)}")
    names = _schema_names(conn, path)
    if not names and not create:
        return None, frozenset()
    _create_schema(conn, sync, names)
    # Then, once the file is known good and in the same hop: the inline connection.
    inline = InlineConnection.open(
        path, max_page_count=max_page_count, checkpoint_pages=_CHECKPOINT_PAGES
    )
    return inline, _SCHEMA_OBJECTS


def _create_schema(conn: sqlite3.Connection, sync: str, names: set[str]) -> None:
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
        add_chain_column(conn)  # a database of version 1 or 2: the chain, computed
        # Re-read under the lock: never lower the version a newer smithers wrote.
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _check_read_only(conn: sqlite3.Connection, busy_timeout_ms: int, path: str) -> frozenset[str]:
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA query_only = ON")
    # Reading the schema turns a non-SQLite file (or an unreadable WAL) into an error now.
    return frozenset(_schema_names(conn, path) & _SCHEMA_OBJECTS)


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
    known: tuple[int, bytes] | None = None,
) -> tuple[int, bytes]:
    rows = _rows(run_id, events, expected_seq)
    return _append_tx(conn, run_id, rows, expected_seq, status, workflow_name, known)


def _append_tx(
    conn: sqlite3.Connection,
    run_id: str,
    rows: list[tuple[str, int, str, int, bytes]],
    expected_seq: int,
    status: str | None,
    workflow_name: str | None,
    known: tuple[int, bytes] | None = None,
) -> tuple[int, bytes]:
    """Append `rows` after seq `expected_seq` in one transaction; return the new last row.

    Returns ``(seq, chain hash)`` of the last row written.

    `known` is the run's last ``(seq, hash)`` as this store's previous append left it:
    when its seq is `expected_seq`, the previous hash is taken from it instead of read
    (one statement less per append, the hot path), and another writer's row at the
    same seq is caught by the ``(run_id, seq)`` unique constraint instead.

    Raises:
        RunAlreadyExistsError: `expected_seq` is 0 and the run has events.
        SeqConflictError: the run's last seq is not `expected_seq`.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        trusted = known is not None and expected_seq > 0 and known[0] == expected_seq
        if known is not None and trusted:
            prev = known[1]
        else:
            last = conn.execute(_LAST, (run_id,)).fetchone()
            actual = last[0] if last is not None else 0
            if actual != expected_seq:
                if expected_seq == 0:
                    raise RunAlreadyExistsError(run_id, actual_seq=actual)
                raise SeqConflictError(run_id, expected_seq=expected_seq, actual_seq=actual)
            # The chain: each row's hash from the one before it (`_chain`), in this
            # transaction, so the previous hash is the one on disk.
            if last is not None:
                prev = bytes(last[1])
            else:
                prev = chain_origin_hash(conn, rows[0][2], rows[0][4])
        chained = []
        for r in rows:
            prev = chain_hash(prev, r[1], r[2], r[4])
            chained.append((r[0], r[1], r[2], r[3], r[4], prev))
        try:
            conn.executemany(_INSERT, chained)
        except sqlite3.IntegrityError as e:
            if not trusted or e.sqlite_errorcode != sqlite3.SQLITE_CONSTRAINT_UNIQUE:
                raise
            # Another writer appended since this store's last append: report it.
            row = conn.execute(_LAST, (run_id,)).fetchone()
            raise SeqConflictError(
                run_id, expected_seq=expected_seq, actual_seq=row[0] if row else 0
            ) from None
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
        return last_seq, prev
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


def _lock_error(
    path: Path, e: BaseException, *, waited_ms: int, lock_timeout_ms: int, holder: LockHolder | None
) -> DatabaseWriteError:
    """The error of a write that waited `lock_timeout_ms` for the lock in vain."""
    details: dict[str, Any] = {
        "dbPath": str(path),
        "reason": str(e),
        "lock": "write",
        "waitedMs": waited_ms,
        "lockTimeoutMs": lock_timeout_ms,
    }
    if holder is not None:
        details.update(holderPid=holder.pid, holderCommand=holder.command)
        who = f"process {holder.pid}" + (f" ({holder.command})" if holder.command else "")
        held = f"The write lock is held by {who}."
    else:
        held = "The process holding it was not found (another host, or no /proc)."
    return DatabaseWriteError(
        f"Could not write to the database {path}: it stayed locked (its write lock held by "
        f"another connection) for {waited_ms} ms, the lock wait ({LOCK_TIMEOUT_ENV}="
        f"{lock_timeout_ms}). {held} Nothing of this write was kept.",
        details=details,
        hint="Let that process end its write transaction (or stop it), then try again; a "
        "run this stopped is resumed by `smithers up --resume RUN_ID` or `smithers "
        "supervise`.",
    )


def _query_error(path: Path, e: BaseException) -> DatabaseQueryError:
    return DatabaseQueryError(
        f"Could not read the database {path}: {e}. Verify the file with "
        f"`sqlite3 {path} 'PRAGMA integrity_check'`; if it is another process's file, "
        "unreadable, or a copy missing its -wal/-shm sidecars, fix that, else restore "
        "from backup or start with a fresh --db.",
        details={"dbPath": str(path), "reason": str(e)},
    )
