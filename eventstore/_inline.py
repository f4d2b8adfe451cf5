"""Statements on the event loop's own thread: the SQLite store's uncontended fast path.

A hop to aiosqlite's connection thread costs ~0.1 ms, several times what committing a
small batch in WAL mode with ``synchronous=NORMAL`` costs (~0.03 ms: no fsync, the
commit is a ``write`` to the WAL) or what a small read costs. `InlineConnection` keeps
a second connection, used only for what can finish at once (small appends and reads):

- its ``busy_timeout`` is 0, so a write lock held by another connection (this store's
  thread, another process) fails at once with ``SQLITE_BUSY`` instead of blocking the
  loop; the caller then takes the thread path, which waits and retries;
- its ``wal_autocheckpoint`` is 0, so a commit never runs a checkpoint (page writes and
  two fsyncs) on the loop; the caller counts the WAL's growth (`grew`) and has the
  connection thread checkpoint (`wal_checkpoint`);
- a lock guards it: one connection is never used by two threads at once. The loop
  never waits for it (`try_run` takes it only if free); `close` runs in the
  connection thread and may wait.

Opened with ``check_same_thread=False``: it is opened and closed in the connection
thread, and used on the loop's thread (or any thread that finds the lock free).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ("InlineConnection", "is_busy", "wal_checkpoint")

_T = TypeVar("_T")

log = logging.getLogger("smithers.eventstore")

_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def is_busy(err: sqlite3.Error) -> bool:
    """Return True if `err` means another connection holds a lock (retry later)."""
    code = getattr(err, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF in _BUSY_CODES:
        return True
    text = str(err).lower()
    return "locked" in text or "busy" in text


class InlineConnection:
    """A connection for short statements on the calling thread, never waiting.

    Create it with `open` in the connection thread. `try_run` runs a function (a
    write transaction or a read) if the connection is free and no lock is in the way;
    `None` means "not done, nothing written: take the thread path".

    Args:
        conn: The connection (``isolation_level=None``, ``check_same_thread=False``).
        checkpoint_pages: WAL pages written between two checkpoint requests.
    """

    def __init__(self, conn: sqlite3.Connection, checkpoint_pages: int) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()
        self._checkpoint_pages = checkpoint_pages
        self._pages = 0

    @classmethod
    def open(
        cls, path: str, *, max_page_count: int | None, checkpoint_pages: int
    ) -> InlineConnection | None:
        """Open the inline connection to `path`; None if that is not possible.

        None when the file is not in WAL mode (a rollback journal fsyncs on commit)
        or cannot be opened: the caller then does everything in its thread, which
        reports whatever is wrong with the file. Blocking I/O: call it in the
        connection thread.
        """
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return None
        try:
            # Waits a little while opening (another process may be creating the file),
            # never afterwards.
            conn.execute("PRAGMA busy_timeout = 1000")
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("PRAGMA synchronous = NORMAL")
            if max_page_count is not None:
                conn.execute(f"PRAGMA max_page_count = {int(max_page_count)}")
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            conn.execute("PRAGMA busy_timeout = 0")
        except sqlite3.Error:
            conn.close()
            return None
        if str(mode).lower() != "wal":
            conn.close()
            return None
        return cls(conn, checkpoint_pages)

    def try_run(self, fn: Callable[..., _T], *args: Any) -> _T | None:
        """Run ``fn(conn, *args)`` here and now, unless that would have to wait.

        `fn` is a read, or a whole write transaction (``BEGIN IMMEDIATE`` …
        ``COMMIT``) that rolls back on any exception; it never returns None.

        Returns:
            What `fn` returned; None if the connection is in use by another thread,
            closed, or a lock is held (``SQLITE_BUSY``): then nothing was written.

        Raises:
            sqlite3.Error: any other SQLite failure (nothing of the transaction kept).
            Exception: whatever `fn` raises (e.g. a version conflict).
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            conn = self._conn
            if conn is None:
                return None
            try:
                return fn(conn, *args)
            except sqlite3.OperationalError as e:
                if is_busy(e):
                    return None
                raise
        finally:
            self._lock.release()

    def grew(self, payload_bytes: int) -> bool:
        """Count a committed transaction's WAL pages; True when a checkpoint is due.

        The estimate: the payload's pages plus three (the table's last page, the
        ``(run_id, seq)`` index page, the runs-index page).
        """
        self._pages += 3 + payload_bytes // 4096
        if self._pages < self._checkpoint_pages:
            return False
        self._pages = 0
        return True

    def close(self) -> None:
        """Close the connection. Blocking: call it in the connection thread."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def wal_checkpoint(
    conn: sqlite3.Connection | None, *, restart_frames: int, hold: Callable[[], None]
) -> None:
    """Checkpoint the WAL from `conn` (the connection thread's), if open; blocking.

    A ``PASSIVE`` checkpoint (it never waits for readers or writers) copies the WAL
    into the database while inline writes go on. SQLite starts the WAL over from its
    beginning only when a write begins on a fully checkpointed WAL, which a steady
    stream of inline writes racing the checkpoint prevents, so the WAL would grow
    without bound. Hence, once the WAL holds `restart_frames` frames or more, a second
    step: `hold` is called, which must send further writes through this thread
    (queued behind this call), and a second ``PASSIVE`` checkpoint copies the few
    frames written meanwhile; the next write then starts the WAL over. Writes wait
    for that step (its two fsyncs), so it is done only every few checkpoints.
    A failure is only logged: the next checkpoint catches up.

    Args:
        conn: The connection thread's connection (None: closed, nothing to do).
        restart_frames: WAL size (frames, i.e. pages) from which to restart it.
        hold: Called before the second step.
    """
    if conn is None:
        return
    try:
        frames = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        if frames >= restart_frames:
            hold()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as e:
        log.debug("WAL checkpoint skipped: %s", e)
