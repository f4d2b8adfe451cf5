"""How commands reach the database: one `Client` per command, from click's context.

The ``smithers`` group puts a `Clients` in ``ctx.obj``; a command takes it with
`pass_clients` (click's `make_pass_decorator`) and opens one client, inside its one
``anyio.run``, for everything it does (STYLE §6)::

    @main.command()
    @db_option
    @pass_clients
    def ps(clients: Clients, db: str | None) -> None:
        runs = clients.run(db, lambda client: client.runs())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import anyio
import click
from smithers.engine import connect

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from smithers.engine import Client

__all__ = ("Clients", "pass_clients")

_T = TypeVar("_T")


class Clients:
    """Opens the client of a command: `connect` by default (tests may pass another)."""

    def __init__(
        self, connect: Callable[..., AbstractAsyncContextManager[Client]] = connect
    ) -> None:
        self._connect = connect

    def open(
        self, db: str | None, *, read_only: bool = False
    ) -> AbstractAsyncContextManager[Client]:
        """Return ``connect(db)``: use it as ``async with clients.open(db) as client``.

        With `read_only`, ``connect(db, read_only=True)`` (the database opened
        read-only: SQLite ``mode=ro``, see `connect`).
        """
        if read_only:
            return self._connect(db, read_only=True)
        return self._connect(db)

    def run(
        self, db: str | None, fn: Callable[[Client], Awaitable[_T]], *, read_only: bool = False
    ) -> _T:
        """Open a client on `db`, await ``fn(client)``, close it; all in one `anyio.run`.

        Args:
            db: The ``--db`` option (None: resolved as `connect` does).
            fn: What the command does with the client.
            read_only: Open the database read-only (every read command does): a
                write through the client raises `DatabaseWriteError`.

        Returns:
            What `fn` returned.

        Raises:
            Whatever `fn` raises (after the client is closed).
        """

        async def main() -> _T:
            async with self.open(db, read_only=read_only) as client:
                return await fn(client)

        return anyio.run(main)


pass_clients = click.make_pass_decorator(Clients, ensure=True)
"""Decorator passing the context's `Clients` as a command's first argument."""
