"""The run queue: `submit_run` records a run for a worker to start (``smithers submit``).

A submitted run's log starts with `RunQueued` (status ``queued``): the workflow file,
its identity hash, the validated input and the run config, exactly what a first
`RunStarted` records, and the queue and priority. Nothing runs. A worker
(`smithers.engine.lifecycle._worker`) claims it by resuming it (`resume_run`): its first
`RunStarted` is appended with ``expected_seq`` = the `RunQueued` seq, so of two workers
racing for it one wins and the other gets ``RESUME_CLAIM_FAILED``. ``ps`` lists queued
runs, ``down``/``cancel`` cancel them, ``supervise`` leaves them to the workers.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import decode_event, open_store, to_raw
from smithers.eventstore.events import DEFAULT_QUEUE, RunQueued

from .._clock import Clock, SystemClock
from .._run_ids import validate_run_id
from ..authoring import check_input, load_workflow, workflow_identity
from ..errors import InvalidInputError
from ..history import AUDIT_STREAM_ID, SUPERVISOR_STREAM_ID
from ._actors import api_actor
from ._run import new_run_id

if TYPE_CHECKING:
    import os

    from smithers.eventstore import EventStore
    from smithers.eventstore.events import Actor

__all__ = (
    "QUEUED_STATUS",
    "QueuedRun",
    "SubmitResult",
    "check_queue_name",
    "queued_runs",
    "submit_run",
)

QUEUED_STATUS = "queued"
"""Runs-index status of a submitted run no worker has started."""

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class SubmitResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What `submit_run` recorded."""

    run_id: str
    queue: str
    priority: int
    workflow_name: str
    workflow_path: str
    status: str = QUEUED_STATUS


class QueuedRun(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A run waiting in a queue, as workers choose among them."""

    run_id: str
    queue: str
    priority: int
    submitted_at_ms: int
    """Timestamp of its `RunQueued`, Unix epoch ms."""


def check_queue_name(name: str) -> str:
    """Return `name` if it is a valid queue name (letters, digits, ``_.:-``, <= 64).

    Raises:
        InvalidInputError: code ``INVALID_INPUT`` otherwise.
    """
    if not _QUEUE_NAME.match(name):
        raise InvalidInputError(
            f"{name!r} is not a queue name: use letters, digits and _.:- (at most 64, "
            "starting with a letter or digit).",
            details={"queue": name},
            hint=f"e.g. --queue {DEFAULT_QUEUE} or --queue batch",
        )
    return name


async def submit_run(
    spec: str,
    *,
    input: Any = None,
    run_id: str | None = None,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    max_concurrency: int = 4,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    clock: Clock | None = None,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> SubmitResult:
    """Record a queued run of the workflow in `spec` (one `RunQueued`); nothing runs.

    The workflow file is loaded (its module code runs here) to validate `input` with
    `check_input` and hash the code (`workflow_identity`), as ``up`` does before a run
    starts. Awaits I/O.

    Args:
        spec: ``path/to/file.py`` or ``path/to/file.py:name`` (see `load_workflow`).
        input: The run's input, a JSON object (None: ``{}``).
        run_id: Run id (default: a new one, `new_run_id`).
        queue: Queue name (`check_queue_name`).
        priority: Higher is taken first.
        max_concurrency: The run's task cap, recorded in its config (>= 1).
        db: Database path or postgresql:// URL (see `resolve_db`).
        store: An open store to use instead of opening `db` (not closed here).
        clock: Time source (tests pass a fake).
        by: Who submits (default ``$SMITHERS_ACTOR``, else the OS user).
        reason: Why, recorded with `by`.
        actor: The `Actor` to record instead of one built from `by` and `reason`.

    Returns:
        A `SubmitResult`.

    Raises:
        InvalidInputError: ``INVALID_INPUT`` for a bad input, run id, queue name or
            `max_concurrency`; nothing recorded.
        WorkflowMissingDefaultError / EngineError: if the file cannot be loaded.
        RunAlreadyExistsError: ``RUN_ALREADY_EXISTS`` if `run_id` exists.
        DatabaseWriteError: if the write failed.
    """
    check_queue_name(queue)
    if max_concurrency < 1:
        raise InvalidInputError(f"max_concurrency must be >= 1, got {max_concurrency}.")
    if run_id is not None:
        validate_run_id(run_id)
        if run_id in (SUPERVISOR_STREAM_ID, AUDIT_STREAM_ID):
            raise InvalidInputError(
                f"{run_id!r} is reserved for smithers' own log; pick another run id.",
                details={"runId": run_id},
            )
    who = api_actor(actor, by=by, reason=reason)
    wf, path = load_workflow(spec)
    _, input_raw = check_input(wf, input)
    identity = await anyio.to_thread.run_sync(workflow_identity, path)
    where = str(path.resolve())
    rid = run_id or new_run_id()
    now = (clock or SystemClock()).now_ms()
    event = RunQueued(
        run_id=rid,
        timestamp_ms=now,
        workflow_name=wf.name,
        workflow_path=where,
        workflow_hash=identity.digest,
        input=msgspec.Raw(input_raw),
        input_hash=hashlib.sha256(input_raw).hexdigest(),
        config=to_raw({"maxConcurrency": max_concurrency}),
        queue=queue,
        priority=priority,
        actor=who,
    )
    target = store if store is not None else await open_store(db)
    try:
        await target.append(
            rid, [event], expected_seq=0, status=QUEUED_STATUS, workflow_name=wf.name
        )
    finally:
        if store is None:
            with anyio.CancelScope(shield=True):
                await target.close()
    return SubmitResult(
        run_id=rid,
        queue=queue,
        priority=priority,
        workflow_name=wf.name,
        workflow_path=where,
    )


async def queued_runs(
    store: EventStore, *, cache: dict[str, QueuedRun] | None = None
) -> list[QueuedRun]:
    """Return the runs the runs index shows ``queued``, the next to take first.

    Ordered by priority (highest first), then submit time, then run id. Each run's
    queue and priority come from its `RunQueued` (its first row); `cache` (run id ->
    `QueuedRun`, filled here) saves that read for runs seen before: they never change.
    Awaits I/O.

    Raises:
        DatabaseQueryError: if the database cannot be read.
    """
    found: list[QueuedRun] = []
    seen = cache if cache is not None else {}
    for record in await store.list_runs():
        if record.status != QUEUED_STATUS:
            continue
        known = seen.get(record.run_id)
        if known is None:
            rows = await store.read(record.run_id, upto_seq=1)
            event = decode_event(rows[0].type, rows[0].data) if rows else None
            if not isinstance(event, RunQueued):
                continue
            known = QueuedRun(
                run_id=record.run_id,
                queue=event.queue,
                priority=event.priority,
                submitted_at_ms=event.timestamp_ms,
            )
            seen[record.run_id] = known
        found.append(known)
    found.sort(key=lambda q: (-q.priority, q.submitted_at_ms, q.run_id))
    return found
