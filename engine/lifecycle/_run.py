"""`run_workflow`: start a run or resume one, as Smithers' `runWorkflow` (DESIGN §6, §12).

Starting appends the run's first events with ``expected_seq=0``; resuming folds the log,
checks ownership and workflow identity, and claims the run by appending its new
activation with ``expected_seq`` = the last seq it read. Either way the first append is
the claim: of two processes racing, exactly one wins.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import (
    EventStore,
    Lease,
    SQLiteEventStore,
    decode_event,
    decode_json,
    open_store,
    resolve_db,
    to_raw,
)
from smithers.eventstore.errors import error_info_to_json
from smithers.eventstore.events import (
    NULL_RAW,
    ErrorInfo,
    Event,
    NodeCancelled,
    RunForked,
    RunStarted,
    RunStatusChanged,
)

from .._clock import Clock, SystemClock
from .._files import file_mode_of
from .._run_ids import validate_run_id
from ..activation import (
    DEFAULT_HOLD_MS,
    DEFAULT_MAX_TASK_OUTPUT_BYTES,
    NdjsonMirror,
    RunLoop,
    ToolSettings,
    default_log_dir,
)
from ..authoring import check_input
from ..errors import (
    InvalidInputError,
    ResumeMetadataMismatchError,
)
from ..history import AUDIT_STREAM_ID, SUPERVISOR_STREAM_ID, load_state
from ..tools import network_mode
from ._actors import api_actor
from ._ownership import DEFAULT_STALE_THRESHOLD_MS, owner_verdict, refuse_if_owned
from ._resume_checks import (
    NOT_RESUMABLE,
    check_determinism,
    first_run_started,
    identity_of,
    not_resumable,
    recorded_identity,
)
from ._subflow import child_runner

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from smithers.eventstore.events import Actor
    from smithers.projections import RunState, SubflowParent

    from ..authoring import Workflow

__all__ = (
    "SMITHERS_VERSION",
    "RunResult",
    "close_open_attempts",
    "new_run_id",
    "run_result",
    "run_workflow",
)

SMITHERS_VERSION = "0.1.0"
_DEFAULT: Any = object()


class RunResult(msgspec.Struct, kw_only=True):
    """What `run_workflow` returns (Smithers' `RunResult`)."""

    run_id: str
    status: str
    """``"finished"``, ``"failed"``, ``"cancelled"``, ``"continued"``, or the status a
    parked run waits in: ``"waiting-approval"``, ``"waiting-event"``, ``"waiting-timer"``."""
    outputs: dict[str, Any]
    """Each node's latest output as plain JSON values, by node id."""
    error: dict[str, Any] | None = None
    """For failed runs: the one JSON error shape (`error_info_to_json`): ``name``,
    ``message``, ``code``, ``details``, ``cause``, ``stack``, ``retryable``, ``file``,
    ``line``, ``function``."""

    @property
    def output(self) -> Any:
        """``outputs.get("output")``, the conventional final output."""
        return self.outputs.get("output")


def new_run_id(prefix: str = "run") -> str:
    """Return a new run id: ``<prefix>-<unix ms base36>-<6 hex>`` (sortable by start time).

    Args:
        prefix: The id's first word: ``run`` by default, ``post-failure`` for an autopsy.
    """
    ms = time.time_ns() // 1_000_000
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    b36 = ""
    while ms:
        ms, r = divmod(ms, 36)
        b36 = digits[r] + b36
    return f"{prefix}-{b36}-{secrets.token_hex(3)}"


def _error_dict(info: ErrorInfo) -> dict[str, Any]:
    out = error_info_to_json(info)
    assert out is not None
    return out


def _result(state: RunState) -> RunResult:
    return RunResult(
        run_id=state.run_id,
        status=state.status,
        outputs={k: decode_json(v) for k, v in state.outputs().items()},
        error=_error_dict(state.error) if state.error is not None else None,
    )


def run_result(state: RunState) -> RunResult:
    """Return the `RunResult` of a run's folded state, as `run_workflow` returns it. No I/O."""
    return _result(state)


def close_open_attempts(
    state: RunState, *, now_ms: int, only: Collection[str] | None = None
) -> list[NodeCancelled]:
    """``NodeCancelled(reason="abandoned")`` for each attempt `state` shows as running.

    A resume (and a retry-task, for the nodes it resets) closes the attempts a crash
    left open before running their tasks again. `only` limits it to those node ids.
    """
    return [
        NodeCancelled(
            run_id=state.run_id,
            timestamp_ms=now_ms,
            node_id=rec.node_id,
            iteration=rec.iteration,
            attempt=rec.attempts[-1].attempt if rec.attempts else None,
            reason="abandoned",
        )
        for rec in state.nodes.values()
        if rec.state == "running" and (only is None or rec.node_id in only)
    ]


def _check_root(root_dir: str | os.PathLike[str] | None) -> str | None:
    """`root_dir` made absolute, or None.

    Raises:
        InvalidInputError: if it is not an existing folder.
    """
    if root_dir is None:
        return None
    root = os.path.abspath(root_dir)
    if not os.path.isdir(root):
        raise InvalidInputError(
            f"The tool sandbox root {root!r} is not an existing folder.",
            details={"rootDir": root},
            hint="Create the folder or pass another root (--root DIR).",
        )
    return root


def _default_root(path: str | os.PathLike[str] | None) -> str | None:
    """The workflow file's folder (absolute), or None (the cwd at the first tool call)."""
    return os.path.dirname(os.path.abspath(path)) if path else None


def _abspath(path: str | os.PathLike[str] | None) -> str | None:
    """Absolute form of `path` (no filesystem access beyond the cwd)."""
    return os.path.abspath(path) if path else None


def _new_owner(run_id: str, now_ms: int) -> Lease:
    host = socket.gethostname()
    pid = os.getpid()
    return Lease(
        run_id=run_id,
        owner_id=f"{host}:{pid}:{secrets.token_hex(4)}",
        pid=pid,
        host=host,
        acquired_at_ms=now_ms,
        heartbeat_at_ms=now_ms,
    )


async def run_workflow(
    wf: Workflow,
    *,
    input: Any = None,
    run_id: str | None = None,
    resume: bool = False,
    force: bool = False,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    max_concurrency: int = 4,
    on_progress: Callable[[Event], Any] | None = None,
    cancel: Any = None,
    root_dir: str | os.PathLike[str] | None = None,
    log_dir: str | os.PathLike[str] | None = _DEFAULT,
    allow_network: bool = False,
    max_output_bytes: int = 200_000,
    tool_timeout_ms: int = 60_000,
    max_task_output_bytes: int = DEFAULT_MAX_TASK_OUTPUT_BYTES,
    workflow_path: str | os.PathLike[str] | None = None,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    clock: Clock | None = None,
    allow_nondeterminism: bool = False,
    hold_ms: int = DEFAULT_HOLD_MS,
    subflow_of: SubflowParent | None = None,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> RunResult:
    """Run a workflow to its end and return the result, as Smithers' `runWorkflow`.

    Every state change is appended to the run's log before it takes effect; the
    function returns when the run finishes, fails or is cancelled.

    Args:
        wf: The workflow (from ``@workflow``).
        input: A JSON object (dict) or an instance of the workflow's input type. Ignored
            when resuming (the log has the input), except for a fork that has not run
            yet: there it replaces the input the fork inherited.
        run_id: Run id to use (default: a new one); required with `resume`.
        resume: Continue `run_id` from its log: finished nodes are not run again,
            attempts a crash left open are closed (``NodeCancelled``, reason
            ``abandoned``) and run again. Resuming a finished run changes nothing.
        force: With `resume`, take over a run whose owner only looks alive (a fresh
            lease from another host, or this process). Never overrides a live owner on
            this host.
        db: SQLite database path (default: see `resolve_db_path`). With `store`, it only
            locates the default NDJSON mirror (no mirror when None).
        store: An open `EventStore` to use instead of opening `db` (not closed here).
        max_concurrency: Run-wide cap on tasks executing at once (default 4).
        on_progress: Called with every event after it is recorded.
        cancel: An object with ``async wait()`` (e.g. `anyio.Event`); when it returns,
            running tasks are cancelled and the run ends ``"cancelled"``.
        root_dir: Root of the tool sandbox (``ctx.tools``, agent tools), an existing
            folder; recorded (absolute) in the run's config. Default: the workflow
            file's folder, else the current directory.
        log_dir: Directory of the NDJSON mirror ``stream.ndjson``; None disables it.
            Default: ``<db dir>/executions/<run_id>/logs`` for a SQLite database.
        allow_network: Whether tools (`bash`) may use the network (recorded).
        max_output_bytes: Cap on one tool call's output, in bytes, >= 1 (recorded).
        tool_timeout_ms: Cap on one tool call's duration, in ms, >= 1 (recorded).
        max_task_output_bytes: Cap on one task output's JSON, in bytes, >= 1 (recorded;
            default `DEFAULT_MAX_TASK_OUTPUT_BYTES`, 64 MiB). A bigger output fails its
            attempt with ``TASK_OUTPUT_TOO_LARGE`` (not retried) before it is recorded.
        workflow_path: Workflow file path to record (default: the builder's module file).
        stale_threshold_ms: With `resume`, an owner silent for this long (ms) is stale
            and may be taken over (see `judge_owner`).
        clock: Time source (tests pass a fake).
        allow_nondeterminism: With `resume`, go on although `wf` no longer renders
            the run's last recorded frame as the log has it (see `check_determinism`).
            Separate from `force`, which is about who owns the run.
        hold_ms: When nothing can go on but nodes wait, keep the process and sleep if
            the next wake-up (a timer, a wait's timeout) is at most this many ms away
            (default 60 s); otherwise the run parks (status ``waiting-*``) and this
            returns. 0 parks at once.
        subflow_of: Set by the engine when the run is the child run of a `Subflow`
            node: the parent run and node, recorded on every ``RunStarted``
            (``parentRunId``, ``parentNodeId``, ``parentIteration``). A resumed child
            keeps the parent its log records.
        by: Who starts (or resumes) the run, recorded on its ``RunStarted`` (the audit
            trail's ``actor``); None: ``$SMITHERS_ACTOR``, else the OS user.
        reason: Why, recorded with `by`.
        actor: The `Actor` to record instead of one built from `by` and `reason`
            (interface ``"api"``): the CLI passes its own. A `Subflow`'s child run
            records none (the engine starts it).

    Continue-as-new (``ContinueAsNew``, ``Loop(continue_as_new_every=N)``): the run ends
    ``continued`` and the next run of the chain starts at once in this process, with
    the same input and options; this repeats until a run ends otherwise.

    Returns:
        A `RunResult` with status ``"finished"``, ``"failed"`` or ``"cancelled"``, or
        ``"waiting-approval"``/``"waiting-event"``/``"waiting-timer"`` for a run that
        parked (resume it after the decision, signal or timer, or let ``smithers
        approve``/``signal``/``supervise`` do it); for a continue-as-new chain, the
        result of its last run (its `run_id`).

    Raises:
        InvalidInputError: if `input` is not an object or fails the input schema, or
            `run_id` is not a valid run id (`validate_run_id`: letters, digits and
            ``-_.:``, at most 128 characters, not ``.``/``..``) or is the reserved
            ``"supervisor"``, or `by`/`reason` is not printable text of a sane
            length (`resolve_actor`); nothing is recorded.
        RunAlreadyExistsError: if a new run's `run_id` already exists.
        RunNotFoundError: if `resume` names a run that does not exist.
        RunNotResumableError: if the run to resume was cancelled or continued as new.
        RunOwnerAliveError, RunStillRunningError: if the run's owner still lives.
        ResumeMetadataMismatchError: if the workflow's code changed since the run began.
        ResumeFrameMismatchError: with `resume`, if `wf` re-renders the run's last
            recorded frame (a fork's: its parent's frame) differently; nothing is
            recorded. Not with `allow_nondeterminism`.
        ResumeClaimFailedError: if another process claimed the run first.
        OwnershipLostError: if another process took the run over mid-run.
        DatabaseWriteError, DatabaseQueryError: on storage failures.

    Example:
        >>> result = await run_workflow(count, input={"start": 5}, db="runs.db")  # doctest: +SKIP
        >>> result.status, result.outputs["second"]  # doctest: +SKIP
        ('finished', {'n': 6})
    """
    if max_concurrency < 1:
        raise InvalidInputError(f"max_concurrency must be >= 1, got {max_concurrency}.")
    if resume and not run_id:
        raise InvalidInputError("resume=True needs the run_id of the run to resume.")
    if run_id is not None:
        validate_run_id(run_id)
    if run_id in (SUPERVISOR_STREAM_ID, AUDIT_STREAM_ID):
        raise InvalidInputError(
            f"{run_id!r} is reserved for smithers' own log; pick another run id.",
            details={"runId": run_id},
        )
    if max_output_bytes < 1 or tool_timeout_ms < 1 or max_task_output_bytes < 1:
        raise InvalidInputError(
            "max_output_bytes, tool_timeout_ms and max_task_output_bytes must be >= 1, got "
            f"{max_output_bytes}, {tool_timeout_ms} and {max_task_output_bytes}.",
            details={
                "maxOutputBytes": max_output_bytes,
                "toolTimeoutMs": tool_timeout_ms,
                "maxTaskOutputBytes": max_task_output_bytes,
            },
        )
    who = None if subflow_of is not None else api_actor(actor, by=by, reason=reason)
    root_dir = _check_root(root_dir)
    clock = clock or SystemClock()
    path = workflow_path or wf.source_path
    tools = ToolSettings(
        root_dir=root_dir if root_dir is not None else _default_root(path),
        allow_network=allow_network,
        max_output_bytes=max_output_bytes,
        tool_timeout_ms=tool_timeout_ms,
        max_task_output_bytes=max_task_output_bytes,
    )
    # In a thread: hashing and parsing the workflow's files blocks for milliseconds.
    identity = await anyio.to_thread.run_sync(identity_of, path)
    if not resume:
        input_value, input_raw = check_input(wf, input)
    run_id = run_id or new_run_id()
    own_store = store is None
    db_path: Path | None = None
    if store is None:
        target = resolve_db(db)
        if isinstance(target, str):  # a PostgreSQL URL: no file beside it, no mirror
            store = await open_store(target)
        else:
            db_path = target
            store = await SQLiteEventStore.open(db_path)
    elif db is not None:
        target = resolve_db(db)
        db_path = target if isinstance(target, Path) else None
    try:
        state: RunState | None = None
        activation = 1
        if resume:
            state = await load_state(store, run_id)
            if state.status == "finished":
                return _result(state)  # nothing left to do: no new attempt, no event
            if state.status in NOT_RESUMABLE:
                raise not_resumable(state)
            now = clock.now_ms()
            verdict = await owner_verdict(
                store, state, now_ms=now, stale_threshold_ms=stale_threshold_ms
            )
            refuse_if_owned(verdict, force=force)
            first = await first_run_started(store, run_id)
            recorded = recorded_identity(first)
            if recorded is not None and identity is not None and recorded.digest != identity.digest:
                raise ResumeMetadataMismatchError(
                    run_id, identity.diff(recorded), recorded.digest, identity.digest
                )
            if not allow_nondeterminism:
                await check_determinism(store, state, wf)
            # A fork that never ran has no RunStarted of its own: a given input wins
            # over the one it inherited (or recorded on its RunForked).
            given = state.activation == 0 and input is not None
            value = input if given else decode_json(state.input) or {}
            input_value, input_raw = check_input(wf, value)
            activation = state.activation + 1
        given_log_dir = log_dir
        config = {
            "maxConcurrency": max_concurrency,
            "rootDir": str(root_dir) if root_dir is not None else None,
            "allowNetwork": allow_network,
            # How `bash` is kept off the network on this machine (`smithers doctor`).
            "networkMode": network_mode(allow_network),
            "maxOutputBytes": max_output_bytes,
            "toolTimeoutMs": tool_timeout_ms,
            "maxTaskOutputBytes": max_task_output_bytes,
        }
        parent = state.subflow_of if state is not None and state.subflow_of else subflow_of

        input_hash = hashlib.sha256(input_raw).hexdigest()
        # Stored once per run: a resume, or a fork keeping the input it has, refers to it.
        held_in = await _input_held_in(store, state, input_raw)

        def start_events(
            rid: str,
            activation: int,
            owner: Lease,
            now: int,
            *,
            ref: str | None = None,
            actor: Actor | None = None,
        ) -> list[Event]:
            return [
                RunStarted(
                    run_id=rid,
                    timestamp_ms=now,
                    workflow_name=wf.name,
                    workflow_path=_abspath(path),
                    workflow_hash=identity.digest if identity else None,
                    workflow_files=identity.files if identity else (),
                    input=NULL_RAW if ref is not None else msgspec.Raw(input_raw),
                    input_ref=ref,
                    input_hash=input_hash,
                    config=to_raw(config),
                    smithers_version=SMITHERS_VERSION,
                    activation=activation,
                    owner_id=owner.owner_id,
                    pid=owner.pid,
                    host=owner.host,
                    parent_run_id=parent.run_id if parent is not None else None,
                    parent_node_id=parent.node_id if parent is not None else None,
                    parent_iteration=parent.iteration if parent is not None else None,
                    actor=actor,
                ),
                RunStatusChanged(run_id=rid, timestamp_ms=now, status="running"),
            ]

        def new_loop(rid: str, state: RunState | None, owner: Lease) -> RunLoop:
            log = given_log_dir
            if log is _DEFAULT:
                log = default_log_dir(db_path, rid) if db_path else None
            assert store is not None

            async def reload() -> RunState:
                assert store is not None
                return await load_state(store, rid)

            return RunLoop(
                wf,
                store,
                rid,
                input_value=input_value,
                max_concurrency=max_concurrency,
                on_progress=on_progress,
                clock=clock,
                mirror=NdjsonMirror(Path(log), mode=file_mode_of(db_path, 0o644))
                if log is not None
                else None,
                state=state,
                owner=owner,
                reload=reload,
                hold_ms=hold_ms,
                tools=tools,
                run_child=child_runner(
                    run_workflow,
                    store=store,
                    clock=clock,
                    force=force,
                    options={
                        "db": db_path,
                        "log_dir": _DEFAULT if log is not None else None,
                        "max_concurrency": max_concurrency,
                        "root_dir": root_dir,
                        "allow_network": allow_network,
                        "max_output_bytes": max_output_bytes,
                        "tool_timeout_ms": tool_timeout_ms,
                        "max_task_output_bytes": max_task_output_bytes,
                        "stale_threshold_ms": stale_threshold_ms,
                        "allow_nondeterminism": allow_nondeterminism,
                        "hold_ms": hold_ms,
                    },
                ),
            )

        now = clock.now_ms()
        owner = _new_owner(run_id, now)
        first_events = start_events(run_id, activation, owner, now, ref=held_in, actor=who)
        if state is not None:
            # Attempts a crash left open: closed, and their tasks run again.
            first_events.extend(close_open_attempts(state, now_ms=now))
        loop = new_loop(run_id, state, owner)
        await loop.drive(first_events, cancel)
        while loop.decider.terminal == "continued" and loop.decider.carried is not None:
            # Continue-as-new: the next run of the chain starts now, in this process.
            carried = loop.decider.carried
            now = clock.now_ms()
            owner = _new_owner(carried.run_id, now)
            first_events = start_events(carried.run_id, 1, owner, now)
            first_events.insert(1, msgspec.structs.replace(carried, timestamp_ms=now))
            loop = new_loop(carried.run_id, None, owner)
            await loop.drive(first_events, cancel)
        return _result(loop.state)
    finally:
        if own_store:
            with anyio.CancelScope(shield=True):
                await store.close()


async def _input_held_in(store: EventStore, state: RunState | None, input_raw: bytes) -> str | None:
    """The run whose state already holds `input_raw` as the input, or None (store it).

    For a resume, the run itself (its first `RunStarted`, or its `RunForked`, has it);
    for a fork's first activation, the fork if its `RunForked` carries the input, else
    the parent whose state it copied. Compared byte for byte, so an input given to a
    fork that never ran is stored. Awaits one read for a fork.
    """
    if state is None or state.input == NULL_RAW or bytes(state.input) != input_raw:
        return None
    if state.activation > 0 or state.parent_run_id is None:
        return state.run_id
    rows = await store.read(state.run_id, upto_seq=1)
    first = decode_event(rows[0].type, rows[0].data) if rows else None
    if isinstance(first, RunForked) and first.input != NULL_RAW:
        return state.run_id
    return state.parent_run_id
