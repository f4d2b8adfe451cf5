"""Opening the store a ``--db`` / ``db=`` value names: a SQLite file or a PostgreSQL URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import anyio

from ._locate import resolve_db

if TYPE_CHECKING:
    import os

    from ._protocol import EventStore

__all__ = ("open_store", "wait_for_append")


async def open_store(
    db: str | os.PathLike[str] | None,
    *,
    create: bool = True,
    read_only: bool = False,
    durability: Literal["normal", "full"] = "normal",
) -> EventStore:
    """Open the store `db` names: `PostgresEventStore` for a URL, else `SQLiteEventStore`.

    `db` (else ``SMITHERS_DB``) as a ``postgresql://`` / ``postgres://`` URL
    (`is_postgres_url`) connects to that server (the driver imported only then);
    anything else is a file path resolved by `resolve_db_path` (the nearest
    ``.smithers``, ...). See `resolve_db`. Awaits I/O.

    Args:
        db: A path, a URL, or None (the default database, see `resolve_db_path`).
        create: Create the database (file or tables) if missing; without it a missing
            one raises ``CLI_DB_NOT_FOUND``.
        read_only: Open for reading only; every write raises `DatabaseWriteError`.
        durability: SQLite's ``synchronous`` (see `SQLiteEventStore.open`); a
            PostgreSQL commit is as durable as the server is configured to make it.

    Returns:
        The open store; close it with ``await store.close()``.

    Raises:
        SmithersError: ``CLI_DB_NOT_FOUND`` if `create` is False and there is none.
        MigrationRequiredError: ``SMITHERS_MIGRATION_REQUIRED`` for PostgreSQL tables
            of an older schema.
        DatabaseQueryError: if the file or server cannot be read (connection refused).
    """
    target = resolve_db(db, must_exist=read_only or not create)
    if isinstance(target, str):
        from ._postgres import PostgresEventStore

        return await PostgresEventStore.open(target, create=create, read_only=read_only)
    from ._sqlite import SQLiteEventStore

    if read_only:
        return await SQLiteEventStore.open(target, read_only=True)
    return await SQLiteEventStore.open(target, create=create, durability=durability)


async def wait_for_append(store: EventStore, run_id: str | None, *, timeout_s: float) -> bool:
    """Wait for `store` to have a new append to `run_id` (None: any run), or `timeout_s`.

    On `PostgresEventStore`, LISTEN/NOTIFY: wakes within milliseconds of another
    process's commit (`PostgresEventStore.wait_for_append`). On other stores, a sleep of
    `timeout_s` (the poll interval). Either way the caller reads again after: a True
    is a hint, never a promise of new rows. Awaits I/O.

    Args:
        store: The open store.
        run_id: The run to watch; None for any.
        timeout_s: Longest wait, seconds.

    Returns:
        True if woken by a notified append; False after the timeout (or a sleep).
    """
    from ._postgres import PostgresEventStore

    if isinstance(store, PostgresEventStore):
        return await store.wait_for_append(run_id, timeout_s=timeout_s)
    await anyio.sleep(timeout_s)
    return False
