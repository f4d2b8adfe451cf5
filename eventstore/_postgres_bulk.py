"""Whole-run writes and chain helpers of the PostgreSQL store (`_postgres`).

`import_tx` (``smithers import``) and `delete_tx` (``smithers gc``) as
`_sqlite_bulk` does them for SQLite, reusing its `compare_rows` and `parents_first`;
each runs as one transaction holding the append lock (`APPEND_LOCK`), so positions
stay in commit order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._chain import ZERO_HASH, chain_hash, chain_origin
from ._codec import encode_event
from ._postgres_listen import NOTIFY_SQL
from ._postgres_sql import APPEND_LOCK, HASH_AT, INSERT, LAST, RUN_COLUMNS
from ._sqlite_bulk import compare_rows, parents_first
from .errors import SeqConflictError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from psycopg import AsyncConnection

    from ._sqlite_bulk import BulkDeletion, BulkRow, BulkRun, ImportOutcome
    from .events import Event

__all__ = ("delete_tx", "import_tx", "origin_hash")

_Row = tuple[str, int, str, int, bytes, bytes]


async def import_tx(conn: AsyncConnection[Any], runs: Sequence[BulkRun]) -> list[ImportOutcome]:
    """Insert `runs`' rows verbatim in one transaction (see `EventStore.import_runs`).

    Each run's stored rows are compared with the given ones (`compare_rows`); forks
    are written after their parents (`parents_first`) so their first row chains to
    the parent's hash. Returns the outcomes in the order of `runs`.
    """
    async with conn.transaction():
        await conn.execute(APPEND_LOCK)
        outcome_of: dict[str, ImportOutcome] = {}
        for run in parents_first(runs):
            cur = await conn.execute(
                "SELECT seq, type, timestamp_ms, payload FROM _smithers_events "
                "WHERE run_id = %s ORDER BY seq",
                (run.run_id,),
            )
            have = [(int(r[0]), str(r[1]), int(r[2]), bytes(r[3])) for r in await cur.fetchall()]
            outcome, start = compare_rows(run.run_id, have, run.rows)
            outcome_of[run.run_id] = outcome
            new = run.rows[start:]
            if not new:
                continue
            rows = await _chained(conn, run.run_id, new)
            async with conn.cursor() as c:
                await c.executemany(INSERT, rows)
            await conn.execute(NOTIFY_SQL, (run.run_id,))
            await conn.execute(
                f"INSERT INTO _smithers_runs ({RUN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, "
                "updated_at_ms = excluded.updated_at_ms, last_seq = excluded.last_seq",
                (
                    run.run_id,
                    run.workflow_name,
                    run.status,
                    run.rows[0][2],
                    run.rows[-1][2],
                    run.rows[-1][0],
                ),
            )
    return [outcome_of[run.run_id] for run in runs]


async def delete_tx(
    conn: AsyncConnection[Any],
    deletions: Sequence[BulkDeletion],
    audit_stream: str,
    audit_event: Event | None,
) -> int:
    """Delete runs and append the audit event in one transaction (see `delete_runs`).

    Returns how many event rows were deleted.

    Raises:
        SeqConflictError: if a run's last seq is not its `expected_last_seq`.
    """
    async with conn.transaction():
        await conn.execute(APPEND_LOCK)
        deleted = 0
        for d in deletions:
            deleted += await _delete_one(conn, d)
        if audit_event is not None:
            await _append_audit(conn, audit_stream, audit_event)
    return deleted


async def _hash_at(conn: AsyncConnection[Any], run_id: str, seq: int) -> bytes | None:
    cur = await conn.execute(HASH_AT, (run_id, seq))
    row = await cur.fetchone()
    return bytes(row[0]) if row is not None and row[0] else None


async def origin_hash(conn: AsyncConnection[Any], type_name: str, payload: bytes) -> bytes:
    """The hash a run's first row chains from: its fork parent's row's, else zeros."""
    origin = chain_origin(type_name, payload)
    if origin is None:
        return ZERO_HASH
    return await _hash_at(conn, *origin) or ZERO_HASH


async def _chained(conn: AsyncConnection[Any], run_id: str, rows: Sequence[BulkRow]) -> list[_Row]:
    """`rows` (after the run's stored ones) as insert tuples with their chain hashes."""
    first_seq, first_type, _, first_payload = rows[0]
    if first_seq > 1:
        prev = await _hash_at(conn, run_id, first_seq - 1) or ZERO_HASH
    else:
        prev = await origin_hash(conn, first_type, bytes(first_payload))
    out: list[_Row] = []
    for seq, type_name, ms, payload in rows:
        prev = chain_hash(prev, seq, type_name, bytes(payload))
        out.append((run_id, seq, type_name, ms, bytes(payload), prev))
    return out


async def _delete_one(conn: AsyncConnection[Any], d: BulkDeletion) -> int:
    if d.expected_last_seq is not None:
        cur = await conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = %s", (d.run_id,)
        )
        row = await cur.fetchone()
        actual = int(row[0]) if row else 0
        if actual != d.expected_last_seq:
            raise SeqConflictError(d.run_id, expected_seq=d.expected_last_seq, actual_seq=actual)
    if d.keep_seqs:
        cur = await conn.execute(
            "DELETE FROM _smithers_events WHERE run_id = %s AND NOT (seq = ANY(%s))",
            (d.run_id, [int(s) for s in d.keep_seqs]),
        )
        await conn.execute(
            "UPDATE _smithers_runs SET status = %s WHERE run_id = %s", (d.kept_status, d.run_id)
        )
    else:
        cur = await conn.execute("DELETE FROM _smithers_events WHERE run_id = %s", (d.run_id,))
        await conn.execute("DELETE FROM _smithers_runs WHERE run_id = %s", (d.run_id,))
    await conn.execute("DELETE FROM _smithers_checkpoints WHERE run_id = %s", (d.run_id,))
    await conn.execute("DELETE FROM _smithers_leases WHERE run_id = %s", (d.run_id,))
    return int(cur.rowcount)


async def _append_audit(conn: AsyncConnection[Any], stream: str, event: Event) -> None:
    type_name, timestamp_ms, payload = type(event).__name__, event.timestamp_ms, encode_event(event)
    cur = await conn.execute(LAST, (stream,))
    last = await cur.fetchone()
    seq = (int(last[0]) if last is not None else 0) + 1
    prev = bytes(last[1]) if last is not None and last[1] else ZERO_HASH
    row_hash = chain_hash(prev, seq, type_name, payload)
    await conn.execute(INSERT, (stream, seq, type_name, timestamp_ms, payload, row_hash))
    await conn.execute(NOTIFY_SQL, (stream,))
    await conn.execute(
        f"INSERT INTO _smithers_runs ({RUN_COLUMNS}) "
        "VALUES (%s, '', 'audit', %s, %s, %s) ON CONFLICT (run_id) DO UPDATE SET "
        "updated_at_ms = excluded.updated_at_ms, last_seq = excluded.last_seq",
        (stream, timestamp_ms, timestamp_ms, seq),
    )
