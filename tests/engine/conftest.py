"""Fixtures of the engine tests: a SQLite file per test and a reader of a run's log.

Test modules run with ``--import-mode=importlib``, so shared helpers are handed out as
fixtures rather than imported from this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from smithers.eventstore import (
    EventStore,
    MemoryEventStore,
    SQLiteEventStore,
    StoredEvent,
    decode_event,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator
    from pathlib import Path

    from smithers.eventstore.events import Event


@pytest.fixture
def anyio_backend() -> str:
    # aiosqlite runs its connection thread against asyncio only.
    return "asyncio"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Path of the test's SQLite database (created by the first run)."""
    return tmp_path / "smithers.db"


class RunLog:
    """A run's events read back from a store, in seq order."""

    def __init__(self, rows: list[StoredEvent]) -> None:
        self.rows = rows
        decoded = [decode_event(r.type, r.data) for r in rows]
        assert all(e is not None for e in decoded), "the engine wrote an unknown event type"
        self.events: list[Event] = [e for e in decoded if e is not None]
        self.seqs = [r.seq for r in rows]
        self.types = [r.type for r in rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[tuple[int, Event]]:
        return iter(zip(self.seqs, self.events, strict=True))

    def find(self, type_name: str, node_id: str | None = None, **fields: Any) -> list[Any]:
        """Events of `type_name` (for `node_id`, with these field values), in order."""
        return [e for _, e in self.find_seq(type_name, node_id, **fields)]

    def find_seq(
        self, type_name: str, node_id: str | None = None, **fields: Any
    ) -> list[tuple[int, Any]]:
        """``(seq, event)`` pairs of `type_name` (for `node_id`, with these field values)."""
        out = []
        for seq, event in self:
            if type(event).__name__ != type_name:
                continue
            if node_id is not None and getattr(event, "node_id", None) != node_id:
                continue
            if any(getattr(event, k) != v for k, v in fields.items()):
                continue
            out.append((seq, event))
        return out

    def seq_of(self, type_name: str, node_id: str | None = None, **fields: Any) -> int:
        """Seq of the only event matching; fails the test if there is not exactly one."""
        found = self.find_seq(type_name, node_id, **fields)
        assert len(found) == 1, f"expected one {type_name} {node_id or ''} {fields}, got {found}"
        return found[0][0]

    def node_types(self, node_id: str) -> list[str]:
        """Types of the events about `node_id`, in order."""
        return [type(e).__name__ for _, e in self if getattr(e, "node_id", None) == node_id]


async def _read_rows(run_id: str, store: EventStore | None, path: Path) -> list[StoredEvent]:
    if store is not None:
        return await store.read(run_id)
    sqlite = await SQLiteEventStore.open(path, create=False)
    try:
        return await sqlite.read(run_id)
    finally:
        await sqlite.close()


@pytest.fixture
def read_log(db: Path) -> Callable[..., Awaitable[RunLog]]:
    """``await read_log(run_id, store=None, path=db)``: the run's log as a `RunLog`.

    Reads `store` if given (e.g. a `MemoryEventStore`), else opens the SQLite file
    afresh, as another process would.
    """

    async def read(
        run_id: str, *, store: EventStore | None = None, path: Path | None = None
    ) -> RunLog:
        return RunLog(await _read_rows(run_id, store, path or db))

    return read


class Backend:
    """Where a run is recorded: the test's SQLite file or a `MemoryEventStore`."""

    def __init__(self, kind: str, db: Path) -> None:
        self.kind = kind
        self.db = db
        self.store: EventStore | None = MemoryEventStore() if kind == "memory" else None

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `run_workflow` selecting this backend."""
        return {"store": self.store} if self.store is not None else {"db": self.db}


@pytest.fixture(params=["sqlite", "memory"])
def backend(request: pytest.FixtureRequest, db: Path) -> Backend:
    """Each test using it runs once on SQLite and once on `MemoryEventStore`."""
    return Backend(request.param, db)
