"""The PostgreSQL store's SQL: schema, statements, URLs and error translation.

Kept apart from `_postgres.PostgresEventStore` (which runs them) so each stays small.
No function here does I/O except `create_schema`, which takes an open connection.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from ._envelope import Lease, RunRecord, StoredEvent
from .errors import DatabaseQueryError, DatabaseWriteError, SmithersError

if TYPE_CHECKING:
    import os

    from psycopg import AsyncConnection

__all__ = (
    "PG_SCHEMA_VERSION",
    "MigrationRequiredError",
    "is_postgres_url",
    "redact_url",
)

PG_SCHEMA_VERSION = 1
"""The version of the PostgreSQL schema this smithers writes, kept in ``_smithers_meta``.

1: events (with the chain's ``hash``), runs index, leases, checkpoints. A schema with
a lower version (or tables but no ``_smithers_meta`` row) is refused with
``SMITHERS_MIGRATION_REQUIRED``; a higher one (a newer smithers) is used as it is."""

_URL_SCHEMES = ("postgresql://", "postgres://")

_SCHEMA: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS _smithers_meta (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS _smithers_events (
    position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    type TEXT NOT NULL,
    timestamp_ms BIGINT NOT NULL,
    payload BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    UNIQUE (run_id, seq)
)""",
    "CREATE INDEX IF NOT EXISTS _smithers_events_by_type ON _smithers_events (type, position)",
    """CREATE TABLE IF NOT EXISTS _smithers_runs (
    run_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'running',
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    added BIGINT GENERATED ALWAYS AS IDENTITY
)""",
    "CREATE INDEX IF NOT EXISTS _smithers_runs_by_created ON _smithers_runs (created_at_ms)",
    """CREATE TABLE IF NOT EXISTS _smithers_leases (
    run_id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    pid BIGINT NOT NULL,
    host TEXT NOT NULL,
    acquired_at_ms BIGINT NOT NULL,
    heartbeat_at_ms BIGINT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS _smithers_checkpoints (
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (run_id, seq)
)""",
)
"""Every statement of the schema, each idempotent; run in one transaction on open."""

APPEND_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '._smithers_events'))"
"""Taken by every transaction that inserts events, before its first insert.

Positions come from an identity column, whose next value is taken at insert time and
not rolled back; two transactions inserting at once could commit positions out of
order (5 commits after 6), and a reader of ``position > 4`` that saw 6 would never see
5. Holding this lock (one per schema) from before the first insert to the commit makes
positions commit in increasing order, so `read_all(after_position)` never skips a row
that commits later. It serialises appends only for the few statements of their
transaction (the seq check is the ``UNIQUE (run_id, seq)`` constraint, not this lock).
Positions of a transaction rolled back are never used: a gap that stays a gap."""

_APPEND_ROWS = (
    "WITH append_lock AS MATERIALIZED (" + APPEND_LOCK + "), "
    "appended AS (INSERT INTO _smithers_events "
    "(run_id, seq, type, timestamp_ms, payload, hash) "
    "SELECT %(run)s, r.seq, r.type, r.ts, r.payload, r.hash FROM append_lock CROSS JOIN "
    "unnest(%(seqs)s::bigint[], %(types)s::text[], %(ts)s::bigint[], %(payloads)s::bytea[], "
    "%(hashes)s::bytea[]) AS r(seq, type, ts, payload, hash) ORDER BY r.seq RETURNING seq)"
)
_APPEND_END = (
    " SELECT (SELECT count(*) FROM appended), pg_notify('smithers_' || current_schema(), %(run)s)"
)
APPEND_NEW_RUN = (
    _APPEND_ROWS + ", run_row AS (INSERT INTO _smithers_runs (run_id, workflow_name, status, "
    "created_at_ms, updated_at_ms, last_seq) VALUES (%(run)s, %(workflow)s, %(status)s, "
    "%(first_ms)s, %(last_ms)s, %(last_seq)s) ON CONFLICT (run_id) DO UPDATE SET "
    "workflow_name = excluded.workflow_name, status = excluded.status, "
    "created_at_ms = excluded.created_at_ms, updated_at_ms = excluded.updated_at_ms, "
    "last_seq = excluded.last_seq)" + _APPEND_END
)
"""A run's first append as one statement, so one round trip (see `APPEND`)."""
APPEND_RUN_CHANGE = (
    _APPEND_ROWS + ", run_row AS (UPDATE _smithers_runs SET last_seq = %(last_seq)s, "
    "updated_at_ms = %(last_ms)s, status = COALESCE(%(status)s::text, status), "
    "workflow_name = COALESCE(%(workflow)s::text, workflow_name) WHERE run_id = %(run)s)"
    + _APPEND_END
)
"""An append that changes the run's status or workflow name (see `APPEND`)."""
APPEND = _APPEND_ROWS + _APPEND_END
"""An append of a batch as one statement: one round trip, one implicit transaction.

Data-modifying CTEs: the append lock (`APPEND_LOCK`) is taken before the rows are
produced (the insert reads from it), so before any position is drawn, and held to
the commit; the rows go in seq order; ``pg_notify`` is delivered at the commit. A
seq taken already fails the ``UNIQUE (run_id, seq)`` constraint and nothing of the
statement is kept. Parameters by name: run, seqs, types, ts, payloads, hashes (and
workflow, status, first_ms, last_ms, last_seq for the run-row variants)."""

SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '._smithers_schema'))"
"""Serialises schema creation: ``CREATE TABLE IF NOT EXISTS`` races in PostgreSQL."""

INSERT = (
    "INSERT INTO _smithers_events (run_id, seq, type, timestamp_ms, payload, hash) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
LAST = "SELECT seq, hash FROM _smithers_events WHERE run_id = %s ORDER BY seq DESC LIMIT 1"
HASH_AT = "SELECT hash FROM _smithers_events WHERE run_id = %s AND seq = %s"
RUN_COLUMNS = "run_id, workflow_name, status, created_at_ms, updated_at_ms, last_seq"
RUN_SELECT = (
    "SELECT r.run_id, r.workflow_name, r.status, r.created_at_ms, "
    "COALESCE(e.timestamp_ms, r.updated_at_ms), COALESCE(e.seq, r.last_seq) "
    "FROM _smithers_runs r LEFT JOIN LATERAL (SELECT seq, timestamp_ms FROM "
    "_smithers_events WHERE run_id = r.run_id ORDER BY seq DESC LIMIT 1) e ON true"
)
"""A run's index row, its last seq and time read from its last event (as SQLite's)."""
EVENT_COLUMNS = "position, run_id, seq, type, timestamp_ms, payload"
LEASE_COLUMNS = "run_id, owner_id, pid, host, acquired_at_ms, heartbeat_at_ms"


class MigrationRequiredError(DatabaseQueryError):
    """The PostgreSQL schema was written by an older smithers: migrate it first.

    Details: `dbPath` (the URL, password hidden), `schemaVersion` (found),
    `runCount` (runs in the old tables), `expectedSchemaVersion`, `resolvedBackend`
    (``"postgres"``).
    """

    default_code = "SMITHERS_MIGRATION_REQUIRED"


def is_postgres_url(db: str | os.PathLike[str] | None) -> bool:
    """True if `db` is a ``postgresql://`` or ``postgres://`` URL (not a file path).

    Args:
        db: A ``--db`` / ``db=`` value: a path, a URL, or None.

    Returns:
        True for a string starting with one of the two schemes (case-insensitive).
    """
    return isinstance(db, str) and db.strip().lower().startswith(_URL_SCHEMES)


def redact_url(url: str) -> str:
    """Return `url` with its password (in the user part or a ``password=`` query) hidden.

    For messages and listings: a URL is never printed with its password.

    Args:
        url: A ``postgresql://`` URL.

    Returns:
        The URL with the password replaced by ``***``.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://***"
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    # The query is kept as written (libpq refuses some re-encodings, e.g. a second
    # "=" in ``options=-csearch_path%3Dx``); only a ``password=`` pair is replaced.
    query = (
        "&".join(
            f"{p.split('=', 1)[0]}=***" if p.split("=", 1)[0].lower() == "password" else p
            for p in parts.query.split("&")
        )
        if parts.query
        else ""
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


async def create_schema(conn: AsyncConnection[Any], url: str, *, create: bool) -> bool:
    """Check (and with `create`, complete) the schema on `conn`, in one transaction.

    Returns:
        True if the schema is there (created now or before); False if there is none
        and `create` is False (nothing was created).

    Raises:
        MigrationRequiredError: if the tables were written by an older schema version.
    """
    async with conn.transaction():
        await conn.execute(SCHEMA_LOCK)
        cur = await conn.execute(
            "SELECT to_regclass('_smithers_events') IS NOT NULL, "
            "to_regclass('_smithers_meta') IS NOT NULL"
        )
        row = await cur.fetchone()
        has_events, has_meta = bool(row and row[0]), bool(row and row[1])
        version = 0
        if has_meta:
            cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM _smithers_meta")
            vrow = await cur.fetchone()
            version = int(vrow[0]) if vrow else 0
        if has_events and version < PG_SCHEMA_VERSION:
            cur = await conn.execute("SELECT COUNT(DISTINCT run_id) FROM _smithers_events")
            crow = await cur.fetchone()
            raise migration_required(url, version, int(crow[0]) if crow else 0)
        if not has_events and not create:
            return False
        if version >= PG_SCHEMA_VERSION:
            return True
        for statement in _SCHEMA:
            await conn.execute(statement)
        await conn.execute("DELETE FROM _smithers_meta")
        await conn.execute("INSERT INTO _smithers_meta (version) VALUES (%s)", (PG_SCHEMA_VERSION,))
    return True


def migration_required(url: str, version: int, run_count: int) -> MigrationRequiredError:
    """The error of a schema older than `PG_SCHEMA_VERSION` at `url` (`run_count` runs)."""
    shown = redact_url(url)
    return MigrationRequiredError(
        f"The smithers tables at {shown} are of schema version {version}, older than "
        f"this smithers' {PG_SCHEMA_VERSION}; they are left unchanged.",
        details={
            "dbPath": shown,
            "runCount": run_count,
            "schemaVersion": version,
            "expectedSchemaVersion": PG_SCHEMA_VERSION,
            "resolvedBackend": "postgres",
        },
        hint=f"Migrate them with `smithers migrate --to {shown}`, or point --db at "
        "another database or schema (``?options=-csearch_path%3DNAME``).",
    )


def not_found(url: str) -> SmithersError:
    """The error of a read of a PostgreSQL database that has no smithers tables."""
    shown = redact_url(url)
    return SmithersError(
        f"No smithers tables at {shown}. Start a run with `smithers up FILE --db URL` "
        "first, or check the URL's database and search_path.",
        code="CLI_DB_NOT_FOUND",
        details={"dbPath": shown},
    )


def query_error(url: str, e: BaseException) -> DatabaseQueryError:
    """A failed read (or connection) as `DatabaseQueryError`, the password hidden."""
    shown = redact_url(url)
    return DatabaseQueryError(
        f"Could not read the PostgreSQL database {shown}: {_reason(e)}",
        details={"dbPath": shown, "reason": _reason(e)},
        hint="Check that the server is running and the URL (host, port, user, database) "
        "is right, e.g. with `psql URL -c 'select 1'`.",
    )


def write_error(url: str, e: BaseException | None) -> DatabaseWriteError:
    """A failed write as `DatabaseWriteError` (nothing of it kept), the password hidden."""
    shown = redact_url(url)
    reason = "the store was opened read-only" if e is None else _reason(e)
    return DatabaseWriteError(
        f"Could not write to the PostgreSQL database {shown}: {reason}. Nothing of this "
        "write was kept.",
        details={"dbPath": shown, "reason": reason},
        hint="Check that the server is running and the user may write there.",
    )


def _reason(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def stored(row: Any) -> StoredEvent:
    """A row of `EVENT_COLUMNS` as a `StoredEvent`."""
    return StoredEvent(
        position=row[0],
        run_id=row[1],
        seq=row[2],
        type=row[3],
        timestamp_ms=row[4],
        data=bytes(row[5]),
    )


def run_record(row: Any) -> RunRecord:
    """A row of `RUN_SELECT` as a `RunRecord`."""
    return RunRecord(
        run_id=row[0],
        workflow_name=row[1],
        status=row[2],
        created_at_ms=row[3],
        updated_at_ms=row[4],
        last_seq=row[5],
    )


def lease(row: Any) -> Lease:
    """A row of `LEASE_COLUMNS` as a `Lease`."""
    return Lease(
        run_id=row[0],
        owner_id=row[1],
        pid=row[2],
        host=row[3],
        acquired_at_ms=row[4],
        heartbeat_at_ms=row[5],
    )
