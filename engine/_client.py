"""The client handle (DESIGN §12): one open database, every operation on runs.

Shaped like Temporal's `Client` + `WorkflowHandle` and DBOS's `DBOSClient`::

    import anyio
    import smithers

    async def main() -> None:
        async with smithers.connect("runs/smithers.db") as client:
            result = await client.run(count, input={"start": 5})
            run = await client.get_run(result.run_id)
            print(await run.output("second"), (await run.timeline()).frames[-1])

    anyio.run(main)

`connect` resolves the database as the CLI does (`resolve_db_path`) and holds one
`SQLiteEventStore` for everything done through the client; every operation is the
engine's own function (`run_workflow`, `read_events`, `rewind`, ...) called with that
store. The store is opened on first use: reads need an existing database
(``CLI_DB_NOT_FOUND`` otherwise), `Client.start` and `Client.run` create it.

Runs started with `Client.start` are tasks of a task group the client owns: leaving
``async with connect(...)`` normally waits for them to end; leaving it with an
exception (or a cancellation) cancels them, and each records its cancellation
(``RunCancelled``, reason ``interrupted``, source ``api``) before the client closes.
"""

from __future__ import annotations

import contextlib
import functools
from typing import TYPE_CHECKING, Any, Literal

import anyio
from smithers.eventstore import (
    PostgresEventStore,
    SQLiteEventStore,
    redact_url,
    resolve_db,
    resolve_db_path,
)
from smithers.eventstore.errors import NotOpenError

from ._handle import RunHandle
from ._run_ids import EXISTING_RUN_HINT, validate_run_id
from .errors import InvalidInputError, RunNotFoundError
from .history import (
    audit,
    is_child_run,
    list_runs,
)
from .lifecycle import (
    down,
    list_pending_approvals,
    new_run_id,
    run_workflow,
)

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
    from pathlib import Path

    from anyio.abc import TaskGroup
    from smithers.eventstore import EventStore, RunRecord
    from smithers.eventstore.events import Event
    from smithers.projections import RunState

    from .authoring import Workflow
    from .history import Operation
    from .lifecycle import PendingApproval, RunResult

__all__ = ("Client", "RunHandle", "connect")

Durability = Literal["normal", "full"]


@contextlib.asynccontextmanager
async def connect(
    db: str | os.PathLike[str] | None = None,
    *,
    durability: Durability = "normal",
    read_only: bool = False,
) -> AsyncIterator[Client]:
    """Open a client on a run database (an async context manager yielding a `Client`).

    The database is resolved now, as the CLI does: `db`, else ``SMITHERS_DB``, else
    the nearest ``.smithers/smithers.db`` walking up from the cwd, else a new one in
    ``./.smithers/``. It is opened once, on first use, and closed on exit. On a normal
    exit the runs started with `Client.start` are waited for; on an exception or a
    cancellation they are cancelled (each records its cancellation) and the
    exception propagates unchanged.

    Args:
        db: Database path, or a ``postgresql://`` / ``postgres://`` URL (the
            PostgreSQL store, `PostgresEventStore`; ``SMITHERS_DB`` may be one too).
        durability: ``"normal"`` (survives a process crash) or ``"full"`` (an fsync
            per commit: also survives power loss); see `SQLiteEventStore.open`.
        read_only: Open the database for reading only (SQLite ``mode=ro``, and
            ``immutable=1`` when the file or its folder is not writable; see
            `SQLiteEventStore.open`): a copy on a read-only mount can be audited.
            Every write (`Client.start`, `RunHandle.cancel`, `RunHandle.rewind`,
            ...) then raises `DatabaseWriteError` (``DB_WRITE_FAILED``) saying the
            database is read-only, and nothing creates a missing file.

    Yields:
        The `Client`. Entering raises nothing: the database's errors surface from the
        first method that needs it (``CLI_DB_NOT_FOUND`` for a read of a missing file).

    Example:
        >>> async with connect("runs/smithers.db") as client:  # doctest: +SKIP
        ...     result = await client.run(count, input={"start": 5})
    """
    client = Client(resolve_db(db), durability=durability, read_only=read_only)
    try:
        error: BaseException | None = None
        async with anyio.create_task_group() as tg:
            client._tg = tg
            try:
                yield client
            except BaseException as e:
                # Cancel the started runs and let the body's own exception out, not
                # wrapped in the task group's exception group.
                error = e
                tg.cancel_scope.cancel()
        if error is not None:
            raise error
    finally:
        await client._close()


class Client:
    """A connection to one run database: start runs, list them, get a `RunHandle`.

    Made by `connect`, which owns its lifetime; not constructed directly. Every
    method awaits I/O through the client's one store; after the ``async with`` block
    they raise `RuntimeError`.
    """

    def __init__(
        self, path: Path | str, *, durability: Durability = "normal", read_only: bool = False
    ) -> None:
        # A str is a PostgreSQL URL (`resolve_db`); a Path, the SQLite file.
        self._url: str | None = path if isinstance(path, str) else None
        self._path: Path | None = None if isinstance(path, str) else path
        self._durability: Durability = durability
        self._read_only = read_only
        self._store: EventStore | None = None
        self._opening = anyio.Lock()
        self._tg: TaskGroup | None = None
        self._closed = False
        self._started: dict[str, RunHandle] = {}

    def __repr__(self) -> str:
        if self._url is not None:
            return f"Client(url={redact_url(self._url)!r})"
        return f"Client(path={str(self._path)!r})"

    @property
    def path(self) -> Path | None:
        """The database file (absolute), as resolved by `connect`; None for a URL."""
        return self._path

    @property
    def db(self) -> str:
        """What ``--db`` names this database by: the file's path, or the URL as given.

        The URL may hold a password: pass it on (to a subprocess), never print it
        (`redact_url`).
        """
        return self._url if self._url is not None else str(self._path)

    @property
    def read_only(self) -> bool:
        """True if the client was opened with ``connect(..., read_only=True)``."""
        return self._read_only

    async def _open(self, *, create: bool = False) -> EventStore:
        """The client's store, opened on first use (created only when `create`).

        A read-only client opens the existing file read-only whatever `create` says.
        """
        if self._closed:
            raise NotOpenError("This client is closed: use it inside `async with connect(...)`.")
        if self._store is None:
            async with self._opening:
                if self._store is None:
                    create = create and not self._read_only
                    if self._url is not None:
                        self._store = await PostgresEventStore.open(
                            self._url, create=create, read_only=self._read_only
                        )
                        return self._store
                    assert self._path is not None
                    path = self._path if create else resolve_db_path(self._path, must_exist=True)
                    self._store = await SQLiteEventStore.open(
                        path,
                        durability=self._durability,
                        create=create,
                        read_only=self._read_only,
                    )
        return self._store

    async def _close(self) -> None:
        self._closed = True
        store, self._store = self._store, None
        if store is not None:
            with anyio.CancelScope(shield=True):
                await store.close()

    # ------------------------------------------------------------------ runs

    async def start(
        self,
        wf: Workflow,
        *,
        input: Any = None,
        run_id: str | None = None,
        resume: bool = False,
        **options: Any,
    ) -> RunHandle:
        """Start a run in the background and return its handle once it is recorded.

        The run is a task of the client's task group (see `connect` for what exit
        does to it); this returns as soon as its first events are in the log (its
        claim), or when it ended without appending anything (a resume of a finished
        run). Awaits I/O; creates the database if missing.

        Args:
            wf: The workflow (from ``@workflow``).
            input: A JSON object (dict) or an instance of the workflow's input type.
            run_id: Run id to use (default: a new one); required with `resume`.
            resume: Continue `run_id` from its log (see `run_workflow`).
            **options: Other keyword arguments of `run_workflow` (``max_concurrency``,
                ``on_progress``, ``cancel``, ``log_dir``, ``clock``, ...). The NDJSON
                mirror goes next to the database unless ``log_dir`` says otherwise.

        Returns:
            The run's `RunHandle`; ``await handle.result()`` waits for its end.

        Raises:
            InvalidInputError: if `input` fails the workflow's input schema,
                `run_id` is not a valid run id (`validate_run_id`), or `resume` has
                no `run_id`; nothing is recorded.
            RunAlreadyExistsError, RunNotFoundError, RunNotResumableError,
                RunOwnerAliveError, RunStillRunningError, ResumeMetadataMismatchError,
                ResumeClaimFailedError: as `run_workflow`, before the run is recorded.
                Errors after that are raised by `RunHandle.result`.
            RuntimeError: if the client is closed.
        """
        if resume and not run_id:
            raise InvalidInputError("resume=True needs the run_id of the run to resume.")
        if run_id is not None:
            validate_run_id(run_id)
        store = await self._open(create=True)
        rid = run_id or new_run_id()
        handle = RunHandle(self, rid)
        handle._wf = wf
        kwargs = {"input": input, "run_id": rid, "resume": resume, **options}
        user = kwargs.pop("on_progress", None)

        async def runner(progress: Callable[[Event], Any]) -> RunResult:
            return await run_workflow(
                wf, store=store, db=self._path, on_progress=progress, **kwargs
            )

        await self._launch(handle, runner, user)
        if handle._error is not None and not handle._claimed:
            raise handle._error
        return handle

    async def _launch(
        self,
        handle: RunHandle,
        runner: Callable[[Callable[[Event], Any]], Awaitable[RunResult]],
        user: Callable[[Event], Any] | None = None,
    ) -> None:
        """Drive ``runner(on_progress)`` as a task of the client's task group for `handle`.

        Returns once the run's first event is recorded (its claim), or the runner ended
        without appending (then ``handle._error`` may say why). `handle.result()` then
        awaits the task.
        """
        tg = self._tg
        if tg is None:  # pragma: no cover - `connect` sets it before yielding
            raise NotOpenError("This client has no task group: make it with `connect`.")
        handle._done = done = anyio.Event()
        handle._scope = scope = anyio.CancelScope()
        handle._claimed = False
        handle._result = None
        handle._error = None
        ready = anyio.Event()
        drive = functools.partial(self._drive, handle, runner, user, scope, done, ready)
        tg.start_soon(drive, name=f"smithers run {handle.run_id}")
        # Readiness by event, not `tg.start`: the run loop calls `on_progress`, and
        # `task_status.started()` must be called by the started task itself.
        try:
            await ready.wait()
        except BaseException:
            scope.cancel()
            raise

    async def _drive(
        self,
        handle: RunHandle,
        runner: Callable[[Callable[[Event], Any]], Awaitable[RunResult]],
        user: Callable[[Event], Any] | None,
        scope: anyio.CancelScope,
        done: anyio.Event,
        ready: anyio.Event,
    ) -> None:
        def progress(event: Event) -> None:
            if not handle._claimed:
                handle._claimed = True
                self._started[handle.run_id] = handle
                ready.set()
            if user is not None:
                user(event)

        try:
            with scope:
                handle._result = await runner(progress)
        except Exception as e:  # kept for `result()` (or raised by `start`)
            handle._error = e
        finally:
            if self._started.get(handle.run_id) is handle:
                del self._started[handle.run_id]
            done.set()
            ready.set()

    async def run(
        self,
        wf: Workflow,
        *,
        input: Any = None,
        run_id: str | None = None,
        resume: bool = False,
        **options: Any,
    ) -> RunResult:
        """Run a workflow to its end and return its result: `start` then `result`.

        The run executes in the calling task, so cancelling this call cancels the run
        (which records its cancellation). Awaits I/O; creates the database if missing.

        Args:
            wf: The workflow (from ``@workflow``).
            input: A JSON object (dict) or an instance of the workflow's input type.
            run_id: Run id to use (default: a new one); required with `resume`.
            resume: Continue `run_id` from its log (see `run_workflow`).
            **options: Other keyword arguments of `run_workflow` (see `start`).

        Returns:
            A `RunResult` (status ``"finished"``, ``"failed"`` or ``"cancelled"``).

        Raises:
            InvalidInputError, RunAlreadyExistsError, RunNotFoundError,
                RunNotResumableError, RunOwnerAliveError, RunStillRunningError,
                ResumeMetadataMismatchError, ResumeClaimFailedError, OwnershipLostError,
                DatabaseWriteError, DatabaseQueryError: as `run_workflow`.
            RuntimeError: if the client is closed.

        Example:
            >>> result = await client.run(count, input={"start": 5})  # doctest: +SKIP
            >>> result.status, result.outputs["second"]  # doctest: +SKIP
            ('finished', {'n': 6})
        """
        if run_id is not None:
            validate_run_id(run_id)  # before the database is created
        store = await self._open(create=True)
        return await run_workflow(
            wf, input=input, run_id=run_id, resume=resume, store=store, db=self._path, **options
        )

    async def runs(
        self, *, status: str | None = None, limit: int | None = None, children: bool = True
    ) -> list[RunRecord]:
        """Return the database's runs, newest first (see `list_runs`). Awaits I/O.

        Args:
            status: Only runs whose last recorded status is this (e.g. ``"failed"``).
            limit: At most this many runs (after the filters); None for all.
            children: Include the child runs of `Subflow` nodes (ids
                ``<parentRunId>:child:...``, see `parse_child_run_id`); False lists
                top-level runs only.

        Returns:
            `RunRecord`s (run id, workflow name, status, created/updated Unix epoch
            ms, last seq).

        Raises:
            SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
            DatabaseQueryError: if the database cannot be read.
        """
        store = await self._open()
        if children:
            return await list_runs(store=store, limit=limit, status=status)
        runs = [r for r in await list_runs(store=store, status=status) if not is_child_run(r)]
        return runs if limit is None else runs[:limit]

    async def audit(
        self,
        run_id: str | None = None,
        *,
        since_ms: int | None = None,
        actor: str | None = None,
        types: Iterable[str] | None = None,
        limit: int | None = None,
        related: bool = True,
    ) -> list[Operation]:
        """Return the audit trail: operations on a run (or every run), newest first.

        Who started, resumed, cancelled, rewound, forked, replayed, retried, approved,
        denied or signalled, when, from where and why (see `audit`). Awaits reads;
        writes nothing.

        Args:
            run_id: The run (with its forks and continuations unless not `related`);
                None: every run.
            since_ms: Only operations recorded at or after this Unix epoch ms.
            actor: Only operations whose actor's name is this.
            types: Only these event types (e.g. ``["RunRewound"]``).
            limit: At most this many, the newest.
            related: With `run_id`, include its forks and continuations.

        Returns:
            `Operation`s, newest first.

        Raises:
            InvalidInputError: for an unknown operation type or a `limit` below 1.
            RunNotFoundError: if `run_id` has no events.
            SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        """
        if run_id is not None:
            validate_run_id(run_id, hint=EXISTING_RUN_HINT)
        return await audit(
            run_id,
            store=await self._open(),
            since_ms=since_ms,
            actor=actor,
            types=types,
            limit=limit,
            related=related,
        )

    async def pending_approvals(self, *, run_id: str | None = None) -> list[PendingApproval]:
        """Return the approvals waiting for a decision (see `list_pending_approvals`).

        Across every running or parked run of the database, or only `run_id`. Awaits
        reads; writes nothing.

        Returns:
            `PendingApproval`s, newest run first, then in mount order.

        Raises:
            InvalidInputError: if `run_id` is not a valid run id.
            RunNotFoundError: if `run_id` has no events.
            SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        """
        return await list_pending_approvals(await self._open(), run_id=run_id)

    async def get_run(self, run_id: str) -> RunHandle:
        """Return the handle of an existing run. Awaits one read.

        A run started by this client and still going gives the handle `start`
        returned (its `result` awaits the run's task).

        Raises:
            InvalidInputError: if `run_id` is not a valid run id (`validate_run_id`).
            RunNotFoundError: if the run has no events.
            SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
            DatabaseQueryError: if the database cannot be read.
        """
        validate_run_id(run_id, hint=EXISTING_RUN_HINT)
        store = await self._open()
        started = self._started.get(run_id)
        if started is not None:
            return started
        if await store.last_seq(run_id) == 0:
            raise RunNotFoundError(run_id)
        return RunHandle(self, run_id)

    async def down(
        self, *, source: str = "api", reason: str | None = None, **options: Any
    ) -> list[RunState]:
        """Cancel every active run, running or waiting (see `down`). Awaits I/O.

        Args:
            source: Who asks, recorded in the events (``"api"``, ``"cli"``, ...).
            reason: Why, recorded in the events.
            **options: Other keyword arguments of `down` (``wait_ms``,
                ``stale_threshold_ms``, ``clock``).

        Returns:
            The final state of each run that was active, newest first.

        Raises:
            SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
            SeqConflictError, DatabaseWriteError, DatabaseQueryError: as
                `cancel_run`.
        """
        store = await self._open()
        return await down(store=store, db=self._path, source=source, reason=reason, **options)
