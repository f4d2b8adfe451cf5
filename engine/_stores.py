"""Opening the database for an operation on existing runs (reads, time travel, control)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import anyio
from smithers.eventstore import open_store

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator

    from smithers.eventstore import EventStore

__all__ = ("existing_store", "open_existing_store")


async def open_existing_store(db: str | os.PathLike[str] | None) -> EventStore:
    """Open the database `db` resolves to (see `resolve_db`), which must exist.

    A ``postgresql://`` URL opens `PostgresEventStore`; a path, `SQLiteEventStore`.

    Raises:
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file (or no
            smithers tables at the URL).
        DatabaseQueryError: if the file is not a usable database, or the server
            cannot be reached.
    """
    return await open_store(db, create=False)


@contextlib.asynccontextmanager
async def existing_store(
    db: str | os.PathLike[str] | None, store: EventStore | None = None
) -> AsyncIterator[EventStore]:
    """Yield `store` as is, or open `db` (see `open_existing_store`) and close it after."""
    if store is not None:
        yield store
        return
    opened = await open_existing_store(db)
    try:
        yield opened
    finally:
        with anyio.CancelScope(shield=True):
            await opened.close()
