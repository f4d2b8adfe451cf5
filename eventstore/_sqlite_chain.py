"""The SQLite store's SQL for the hash chain: the migration to it, and origin lookups.

Functions here take a plain `sqlite3.Connection` (see `_sqlite_sql`); the chain's
formula is in `_chain`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._chain import ZERO_HASH, chain_hash, chain_origin

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Iterator

__all__ = (
    "EVENTS_DDL",
    "add_chain_column",
    "chain_origin_hash",
    "chained_select",
    "has_chain_column",
)

EVENTS_DDL = """CREATE TABLE IF NOT EXISTS {name} (
    position INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    payload BLOB NOT NULL,
    hash BLOB NOT NULL,
    UNIQUE (run_id, seq)
)"""
"""The events table of schema version 3 (``{name}``: the table's name).

``hash`` is NOT NULL with no default, so a smithers of schema version 2 or older,
which inserts rows without it, fails to write to a version-3 database
(``DB_WRITE_FAILED``, "NOT NULL constraint failed") rather than leaving rows out of
the chain; it still reads it (its reads name their columns)."""

_NEW = "_smithers_events_chained"


def has_chain_column(conn: sqlite3.Connection) -> bool:
    """True if `_smithers_events` has the ``hash`` column (schema version 3 or later)."""
    rows = conn.execute("SELECT name FROM pragma_table_info('_smithers_events')").fetchall()
    return any(r[0] == "hash" for r in rows)


def chained_select(
    run_id: str, after_seq: int, upto_seq: int | None, *, with_hash: bool
) -> tuple[str, tuple[object, ...]]:
    """The SQL and parameters of `read_chained`: a run's rows with their hashes.

    Rows ``(position, seq, type, timestamp_ms, payload, hash)`` in seq order; without
    `with_hash` (a database read-only at schema version 2: no column yet) the hash is
    an empty blob.
    """
    column = "hash" if with_hash else "X''"
    sql = (
        f"SELECT position, seq, type, timestamp_ms, payload, {column} FROM _smithers_events "
        "WHERE run_id = ? AND seq > ?"
    )
    params: tuple[object, ...] = (run_id, after_seq)
    if upto_seq is not None:
        sql += " AND seq <= ?"
        params += (upto_seq,)
    return sql + " ORDER BY seq", params


def chain_origin_hash(conn: sqlite3.Connection, type: str, payload: bytes) -> bytes:
    """The hash a run's first row chains from: its fork parent's row's, else zeros.

    Args:
        conn: A connection (in the append's transaction).
        type: The run's first event's type tag.
        payload: Its stored bytes.

    Returns:
        The hash of the parent's row at ``parentSeq`` for a ``RunForked`` first event
        (`chain_origin`), `ZERO_HASH` for any other or when that row does not exist.
    """
    origin = chain_origin(type, payload)
    if origin is None:
        return ZERO_HASH
    row = conn.execute(
        "SELECT hash FROM _smithers_events WHERE run_id = ? AND seq = ?", origin
    ).fetchone()
    return bytes(row[0]) if row is not None and row[0] else ZERO_HASH


def _runs_parents_first(conn: sqlite3.Connection) -> tuple[list[str], dict[str, tuple[str, int]]]:
    """Every run id, each fork after its parent, and each fork's chain origin."""
    runs = [r[0] for r in conn.execute("SELECT DISTINCT run_id FROM _smithers_events")]
    origins: dict[str, tuple[str, int]] = {}
    for run_id in runs:
        first = conn.execute(
            "SELECT type, payload FROM _smithers_events WHERE run_id = ? ORDER BY seq LIMIT 1",
            (run_id,),
        ).fetchone()
        origin = chain_origin(first[0], bytes(first[1]))
        if origin is not None:
            origins[run_id] = origin
    known = set(runs)
    ordered: list[str] = []
    placed: set[str] = set()
    for run_id in runs:
        # Walk up to the oldest ancestor not placed yet, then place down the line.
        line: list[str] = []
        at: str | None = run_id
        while at is not None and at not in placed and at not in line:
            line.append(at)
            parent = origins[at][0] if at in origins else None
            at = parent if parent in known else None
        for r in reversed(line):
            placed.add(r)
            ordered.append(r)
    return ordered, origins


def add_chain_column(conn: sqlite3.Connection) -> bool:
    """Give a version-1/2 events table its ``hash`` column, the chain computed.

    Run inside the caller's write transaction (all of it or nothing). The table is
    rebuilt as `EVENTS_DDL` (positions kept): runs in order, each fork after its
    parent, each row's hash from the previous row of its run (`chain_hash`); a fork's
    first row chains from its parent's row at ``parentSeq``, or from zeros when the
    parent or that row is missing (deleted before the migration). Rows are chained
    as stored: a gap in an old log stays, and `verify_chain` reports it. No
    operation event is recorded (a migration belongs to no run). Blocking I/O.

    Args:
        conn: The connection, in a ``BEGIN IMMEDIATE`` transaction.

    Returns:
        True if the table was rebuilt; False if it already had the column.
    """
    if has_chain_column(conn):
        return False
    runs, origins = _runs_parents_first(conn)
    needed = set(origins.values())
    points: dict[tuple[str, int], bytes] = {}
    conn.execute(EVENTS_DDL.format(name=_NEW))

    def rows(run_id: str) -> Iterator[tuple[object, ...]]:
        origin = origins.get(run_id)
        prev = points.get(origin, ZERO_HASH) if origin is not None else ZERO_HASH
        cursor = conn.execute(
            "SELECT position, seq, type, timestamp_ms, payload FROM _smithers_events "
            "WHERE run_id = ? ORDER BY seq",
            (run_id,),
        )
        for position, seq, type_, ts, payload in cursor.fetchall():
            prev = chain_hash(prev, seq, type_, bytes(payload))
            if (run_id, seq) in needed:
                points[(run_id, seq)] = prev
            yield position, run_id, seq, type_, ts, payload, prev

    for run_id in runs:
        conn.executemany(
            f"INSERT INTO {_NEW} (position, run_id, seq, type, timestamp_ms, payload, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows(run_id),
        )
    conn.execute("DROP TABLE _smithers_events")
    conn.execute(f"ALTER TABLE {_NEW} RENAME TO _smithers_events")
    return True
