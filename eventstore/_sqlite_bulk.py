"""Whole-run writes of the SQLite store: importing runs verbatim, deleting finished runs.

These are the only writes that do not go through `append`: `smithers import` copies rows
from a bundle byte for byte (never re-encoded, so a row's hash recomputes identically),
and `smithers gc` drops whole finished runs. Each runs as one ``BEGIN IMMEDIATE``
transaction on the connection it is given (aiosqlite's connection thread), so a failure
keeps nothing of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from ._chain import ZERO_HASH, chain_hash, chain_origin
from .errors import RunAlreadyExistsError, SeqConflictError

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Sequence

__all__ = ("BulkDeletion", "BulkRow", "BulkRun", "ImportOutcome")

BulkRow = tuple[int, str, int, bytes]
"""One event row as stored: ``(seq, type, timestamp_ms, payload bytes)``."""

ImportOutcome = str
"""What importing one run did: ``"imported"`` (it was new), ``"identical"`` (the
database held exactly these rows: nothing written), ``"extended"`` (the database held a
prefix of them: the rest appended) or ``"kept"`` (the database held these rows and more
after them: nothing written)."""


class BulkRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run to import: its rows (seqs 1..n, contiguous) and its runs-index entry."""

    run_id: str
    rows: tuple[BulkRow, ...]
    """The run's rows from seq 1, in seq order, payloads verbatim."""
    status: str
    """Status for the runs index (as `append`'s ``status``)."""
    workflow_name: str = ""
    """Workflow name for the runs index."""


class BulkDeletion(msgspec.Struct, frozen=True, kw_only=True):
    """A finished run to delete, whole or all but the rows it keeps."""

    run_id: str
    keep_seqs: tuple[int, ...] = ()
    """Seqs of the rows to keep (its audit: operation events and chain head); empty
    deletes every row and the run's index entry. With rows kept, the index entry stays
    with status `kept_status`."""
    kept_status: str = "collected"
    """Index status of a run whose `keep_seqs` rows are kept."""
    expected_last_seq: int | None = None
    """The run's last seq when it was chosen: if it has grown since (rewound, resumed),
    the whole deletion is refused with `SeqConflictError`. None: not checked."""


_SELECT_ROWS = (
    "SELECT seq, type, timestamp_ms, payload FROM _smithers_events WHERE run_id = ? ORDER BY seq"
)
_INSERT = (
    "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload, hash) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_HASH_AT = "SELECT hash FROM _smithers_events WHERE run_id = ? AND seq = ?"
_LAST_HASH = "SELECT seq, hash FROM _smithers_events WHERE run_id = ? ORDER BY seq DESC LIMIT 1"


def _hash_at(conn: sqlite3.Connection, run_id: str, seq: int) -> bytes | None:
    row = conn.execute(_HASH_AT, (run_id, seq)).fetchone()
    return bytes(row[0]) if row is not None and row[0] else None


def _chained(
    conn: sqlite3.Connection, run_id: str, rows: Sequence[BulkRow]
) -> list[tuple[str, int, str, int, bytes, bytes]]:
    """`rows` (appended after the run's stored ones) as insert tuples with their hashes.

    The chain continues from the stored row before the first one, or for a run's first
    row from `ZERO_HASH` or, for a fork, its parent's row at the fork point (as
    `chain_origin`; both rules of an append).
    """
    first_seq, first_type, _, first_payload = rows[0]
    if first_seq > 1:
        prev = _hash_at(conn, run_id, first_seq - 1) or ZERO_HASH
    else:
        origin = chain_origin(first_type, bytes(first_payload))
        prev = (_hash_at(conn, *origin) if origin is not None else None) or ZERO_HASH
    out = []
    for seq, type_name, ms, payload in rows:
        prev = chain_hash(prev, seq, type_name, bytes(payload))
        out.append((run_id, seq, type_name, ms, bytes(payload), prev))
    return out


def _same(a: BulkRow, b: tuple[int, str, int, bytes]) -> bool:
    return a[0] == b[0] and a[1] == b[1] and a[2] == b[2] and bytes(a[3]) == bytes(b[3])


def compare_rows(
    run_id: str, have: Sequence[BulkRow], given: Sequence[BulkRow]
) -> tuple[ImportOutcome, int]:
    """Compare a run's stored rows with a bundle's: the outcome and the rows to append.

    Returns:
        ``(outcome, first index of `given` to append)``.

    Raises:
        RunAlreadyExistsError: code ``RUN_ALREADY_EXISTS`` if neither is a prefix of
            the other (the run id exists with different contents); details ``runId``,
            ``seq`` (the first differing seq).
    """
    common = min(len(have), len(given))
    for i in range(common):
        if not _same(given[i], have[i]):
            raise _differs(run_id, given[i][0], len(have))
    if not have:
        return "imported", 0
    if len(have) == len(given):
        return "identical", len(given)
    if len(have) < len(given):
        return "extended", len(have)
    return "kept", len(given)


def _differs(run_id: str, seq: int, have: int) -> RunAlreadyExistsError:
    error = RunAlreadyExistsError(run_id, actual_seq=have)
    error.summary = (
        f"Run {run_id!r} already exists in this database with different contents (they "
        f"differ at seq {seq}); nothing was imported."
    )
    error.args = (error.summary,)
    error.details["seq"] = seq
    error.hint = (
        "Import into another database (--db PATH), or delete the local run first "
        "(`smithers gc`) if it is the one to replace."
    )
    return error


def parents_first(runs: Sequence[BulkRun]) -> list[BulkRun]:
    """`runs` ordered so a fork comes after the run it forks from (when both are given).

    A fork's first row chains from its parent's row at the fork point, so the parent's
    rows must be written first for the fork's hashes to be the ones it had.
    """
    by_id = {run.run_id: run for run in runs}
    ordered: list[BulkRun] = []
    placed: set[str] = set()

    def place(run: BulkRun, depth: int = 0) -> None:
        if run.run_id in placed:
            return
        seq, type_name, _, payload = run.rows[0] if run.rows else (0, "", 0, b"")
        origin = chain_origin(type_name, bytes(payload)) if seq == 1 else None
        if origin is not None and origin[0] in by_id and depth < len(runs):
            place(by_id[origin[0]], depth + 1)
        placed.add(run.run_id)
        ordered.append(run)

    for run in runs:
        place(run)
    return ordered


def import_tx(conn: sqlite3.Connection, runs: Sequence[BulkRun]) -> list[ImportOutcome]:
    """Insert `runs`' rows verbatim in one transaction; see `SQLiteEventStore.import_runs`.

    Returns the outcomes in the order of `runs` (rows are written parents first).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcome_of: dict[str, ImportOutcome] = {}
        for run in parents_first(runs):
            have = [
                (int(r[0]), str(r[1]), int(r[2]), bytes(r[3]))
                for r in conn.execute(_SELECT_ROWS, (run.run_id,)).fetchall()
            ]
            outcome, start = compare_rows(run.run_id, have, run.rows)
            outcome_of[run.run_id] = outcome
            new = run.rows[start:]
            if not new:
                continue
            conn.executemany(_INSERT, _chained(conn, run.run_id, new))
            first_ms, last_ms, last_seq = run.rows[0][2], run.rows[-1][2], run.rows[-1][0]
            conn.execute(
                "INSERT INTO _smithers_runs (run_id, workflow_name, status, created_at_ms, "
                "updated_at_ms, last_seq) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO "
                "UPDATE SET status = excluded.status, updated_at_ms = excluded.updated_at_ms, "
                "last_seq = excluded.last_seq",
                (run.run_id, run.workflow_name, run.status, first_ms, last_ms, last_seq),
            )
        conn.execute("COMMIT")
        return [outcome_of[run.run_id] for run in runs]
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def delete_tx(
    conn: sqlite3.Connection,
    deletions: Sequence[BulkDeletion],
    audit_stream: str,
    audit_row: tuple[str, int, bytes] | None,
) -> int:
    """Delete runs and append the audit row in one transaction; see `delete_runs`."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        deleted = 0
        for d in deletions:
            if d.expected_last_seq is not None:
                actual = conn.execute(
                    "SELECT COALESCE(MAX(seq), 0) FROM _smithers_events WHERE run_id = ?",
                    (d.run_id,),
                ).fetchone()[0]
                if actual != d.expected_last_seq:
                    raise SeqConflictError(
                        d.run_id, expected_seq=d.expected_last_seq, actual_seq=actual
                    )
            if d.keep_seqs:
                keep = ",".join(str(int(s)) for s in d.keep_seqs)
                deleted += conn.execute(
                    "DELETE FROM _smithers_events WHERE run_id = ? AND seq NOT IN "
                    "(SELECT value FROM json_each(?))",
                    (d.run_id, f"[{keep}]"),
                ).rowcount
                conn.execute(
                    "UPDATE _smithers_runs SET status = ? WHERE run_id = ?",
                    (d.kept_status, d.run_id),
                )
            else:
                deleted += conn.execute(
                    "DELETE FROM _smithers_events WHERE run_id = ?", (d.run_id,)
                ).rowcount
                conn.execute("DELETE FROM _smithers_runs WHERE run_id = ?", (d.run_id,))
            conn.execute("DELETE FROM _smithers_checkpoints WHERE run_id = ?", (d.run_id,))
            conn.execute("DELETE FROM _smithers_leases WHERE run_id = ?", (d.run_id,))
        if audit_row is not None:
            type_name, timestamp_ms, payload = audit_row
            last = conn.execute(_LAST_HASH, (audit_stream,)).fetchone()
            seq = (last[0] if last is not None else 0) + 1
            prev = bytes(last[1]) if last is not None and last[1] else ZERO_HASH
            row_hash = chain_hash(prev, seq, type_name, payload)
            conn.execute(_INSERT, (audit_stream, seq, type_name, timestamp_ms, payload, row_hash))
            conn.execute(
                "INSERT INTO _smithers_runs (run_id, workflow_name, status, created_at_ms, "
                "updated_at_ms, last_seq) VALUES (?, '', 'audit', ?, ?, ?) ON CONFLICT (run_id) "
                "DO UPDATE SET updated_at_ms = excluded.updated_at_ms, last_seq = "
                "excluded.last_seq",
                (audit_stream, timestamp_ms, timestamp_ms, seq),
            )
        conn.execute("COMMIT")
        return deleted
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
