"""Plumbing of the time-travel operations: an open store, appends, a recorded run's options."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import (
    decode_json,
    resolve_db_path,
)
from smithers.eventstore.events import (
    NULL_RAW,
    Event,
)

from .._clock import SystemClock
from .._stores import open_existing_store
from ..activation import (
    append_to_run,
    default_log_dir,
)
from ..authoring import encode_input
from ..errors import (
    InvalidInputError,
)
from ..lifecycle import (
    load_recorded_workflow,
)

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator
    from pathlib import Path

    from smithers.eventstore import EventStore
    from smithers.projections import RunState

    from .._clock import Clock
    from ..authoring import Workflow

__all__: tuple[str, ...] = ()

log = logging.getLogger("smithers.engine")


class _Session:
    """An open store for one operation, and how to hand the same database to a run."""

    def __init__(self, store: EventStore, db_path: Path | None, *, shared: bool = False) -> None:
        self.store = store
        self.db_path = db_path
        self.shared = shared  # the caller's store: `db_path` then only locates the mirror

    @property
    def run_kwargs(self) -> dict[str, Any]:
        """`run_workflow` arguments selecting the same database (the same store if shared)."""
        if self.shared:
            return {"store": self.store, "db": self.db_path}
        return {"db": self.db_path}

    async def append(
        self,
        run_id: str,
        events: list[Event],
        *,
        expected_seq: int,
        status: str | None = None,
        workflow_name: str | None = None,
    ) -> int:
        """Append `events` through the run's writer (`append_to_run`). Awaits I/O.

        With a database path, the run's ``stream.ndjson`` in its default log folder is
        brought up to date: created for a new run (a fork), only extended otherwise.
        """
        log_dir = default_log_dir(self.db_path, run_id) if self.db_path is not None else None
        return await append_to_run(
            self.store,
            run_id,
            events,
            expected_seq=expected_seq,
            status=status,
            workflow_name=workflow_name,
            log_dir=log_dir,
        )


@contextlib.asynccontextmanager
async def _session(
    db: str | os.PathLike[str] | None, store: EventStore | None
) -> AsyncIterator[_Session]:
    if store is not None:
        yield _Session(store, resolve_db_path(db) if db is not None else None, shared=True)
        return
    path = resolve_db_path(db, must_exist=True)
    sqlite = await open_existing_store(path)
    try:
        yield _Session(sqlite, path)
    finally:
        with anyio.CancelScope(shield=True):
            await sqlite.close()


def _input_raw(value: Any) -> msgspec.Raw:
    """A fork's own input as JSON, or JSON null for none (the parent's is kept)."""
    if value is None:
        return NULL_RAW
    if not isinstance(value, dict | msgspec.Struct):
        raise InvalidInputError(
            f"A fork's input must be a JSON object, got {type(value).__name__}.",
            details={"errors": f"expected object, got {type(value).__name__}"},
        )
    return msgspec.Raw(encode_input(value))  # strict and size-capped, as a run's input


def _workflow(state: RunState, workflow: Workflow | None) -> tuple[Workflow, str | None]:
    if workflow is not None:
        return workflow, None
    wf, path = load_recorded_workflow(state)
    return wf, str(path)


_CONFIG_OPTIONS = (
    ("maxConcurrency", "max_concurrency"),
    ("rootDir", "root_dir"),
    ("allowNetwork", "allow_network"),
    ("maxOutputBytes", "max_output_bytes"),
    ("toolTimeoutMs", "tool_timeout_ms"),
)


def _run_options(state: RunState, path: str | None, given: dict[str, Any]) -> dict[str, Any]:
    """`run_workflow` options: the given ones, else what the run recorded (as a resume)."""
    options = dict(given)
    if path is not None:
        options.setdefault("workflow_path", path)
    config = decode_json(state.config)
    if isinstance(config, dict):
        for key, option in _CONFIG_OPTIONS:
            if config.get(key) is not None:
                options.setdefault(option, config[key])
    return options


def _now(clock: Clock | None) -> int:
    return (clock or SystemClock()).now_ms()
