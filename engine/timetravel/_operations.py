"""Time travel as events (DESIGN §7): rewind, fork, replay, retry-task.

Every operation appends events and deletes nothing; the fold gives them their meaning
(`projections`): `RunRewound{to_seq}` makes the run's state its state at `to_seq` again,
a fork's first event `RunForked{parent_seq}` seeds it with its parent's state at that
seq (read through, never copied), `RetryTaskStarted{reset_nodes}` puts nodes back to
pending. What is pending then runs by an ordinary resume (`run_workflow(resume=True)`),
which closes attempts left open at that point (``NodeCancelled``, reason
``abandoned``) and runs them again. Appends use ``expected_seq``: an operation that
raced another writer fails with a conflict instead of deciding on stale state.

A frame number means the run's `FrameCommitted` with that number; the state at frame
N is the fold of the log up to and including that event (`state_at`). Frame numbers are
never reused, so a frame a rewind discarded stays addressable: the state at any seq is
well defined, and going back to it is one more event.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from smithers.eventstore import (
    decode_event,
    decode_json,
    encode_json,
    resolve_db_path,
)
from smithers.eventstore.errors import SmithersError
from smithers.eventstore.events import (
    NULL_RAW,
    TERMINAL_RUN_STATUSES,
    Event,
    FrameCommitted,
    ReplayStarted,
    RetryTaskFinished,
    RetryTaskStarted,
    RunForked,
    RunRewound,
    RunStatusChanged,
)
from smithers.projections import RunState, apply_event, apply_rewind, is_run_status

from .._clock import SystemClock
from .._stores import open_existing_store
from ..activation import (
    BASE_ITERATION,
    Leaf,
    append_to_run,
    compile_tree,
    default_log_dir,
    error_info,
)
from ..authoring import WorkflowContext, check_input
from ..errors import (
    InvalidInputError,
    NodeNotFoundError,
    RunNotResumableError,
)
from ..history import load_state, state_at
from ..lifecycle import (
    DEFAULT_STALE_THRESHOLD_MS,
    RunResult,
    check_resumable,
    close_open_attempts,
    load_recorded_workflow,
    new_run_id,
    run_workflow,
)

if TYPE_CHECKING:
    import os
    from collections.abc import AsyncIterator, Iterable
    from pathlib import Path

    from smithers.eventstore import EventStore

    from .._clock import Clock
    from ..activation import Group, Plan
    from ..authoring import Workflow

__all__ = (
    "fork",
    "replay",
    "retry_task",
    "rewind",
    "task_dependents",
)

log = logging.getLogger("smithers.engine")


# ---------------------------------------------------------------------- plumbing


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
    try:
        return msgspec.Raw(encode_json(value))
    except (TypeError, msgspec.EncodeError) as e:
        raise InvalidInputError(
            f"A fork's input is not JSON-serialisable: {e}.", details={"errors": str(e)}
        ) from e


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


# ---------------------------------------------------------------------- dependents


def _leaves_under(node: Group | Leaf) -> list[str]:
    """Node ids of the tasks in `node`'s subtree, in tree order."""
    out: list[str] = []
    stack: list[Group | Leaf] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Leaf):
            out.append(item.node_id)
        else:
            stack.extend(reversed(item.children))
    return out


def _graph_dependents(plan: Plan, roots: Iterable[str]) -> set[str]:
    """Mounted tasks that come after `roots` in the rendered graph, transitively.

    After a task come: the later children of every Sequence (or Branch) it is in, at
    every level (so the task's Parallel joins before what follows it), and tasks whose
    `depends_on` names it. Linear in the plan's size: each sequence is expanded once
    from its earliest reached child.
    """
    depended: dict[str, list[str]] = {}
    for node_id, leaf in plan.leaves.items():
        for dep in leaf.task.depends_on:
            depended.setdefault(dep, []).append(node_id)
    expanded: dict[int, int] = {}  # id(sequence group) -> first child index collected
    seen = set(roots)
    work = list(seen)
    found: set[str] = set()
    while work:
        node_id = work.pop()
        reached = list(depended.get(node_id, ()))
        node: Group | Leaf | None = plan.leaves.get(node_id)
        while node is not None and node.parent is not None:
            group = node.parent
            if group.kind == "sequence":
                start = node.index + 1
                done_from = expanded.get(id(group))
                if done_from is not None and done_from <= start:
                    break  # this and every enclosing level were collected already
                stop = done_from if done_from is not None else len(group.children)
                for sibling in group.children[start:stop]:
                    reached.extend(_leaves_under(sibling))
                expanded[id(group)] = start
            node = group
        for other in reached:
            if other not in seen:
                seen.add(other)
                found.add(other)
                work.append(other)
    return found


def _input_value(wf: Workflow, state: RunState) -> Any:
    return check_input(wf, decode_json(state.input) or {})[0]


def _render(wf: Workflow, state: RunState, input_value: Any) -> Plan:
    ctx = WorkflowContext(run_id=state.run_id, input=input_value, state=state)
    return compile_tree(wf.build(ctx))


def task_dependents(wf: Workflow, state: RunState, node_id: str) -> list[str]:
    """Return the tasks that depend on `node_id` in the workflow rendered at `state`.

    Dependents come from the rendered graph, not from timestamps: the later members of
    every Sequence (or Branch) the task is in, at every level (a Parallel joins before
    what follows it), tasks naming it in `depends_on`, transitively; and tasks mounted
    only because of an output being reset (they vanish when the workflow is rendered
    with those nodes back to pending), with their own dependents. Pure: renders only.

    Args:
        wf: The run's workflow.
        state: The run's state to render against.
        node_id: The task.

    Returns:
        Node ids in tree order, without `node_id`.

    Raises:
        InvalidInputError: if the run's recorded input no longer fits `wf`.
        Exception: whatever the workflow's builder raises for `state`.
    """
    input_value = _input_value(wf, state)
    plan = _render(wf, state, input_value)
    reset = {node_id} | _graph_dependents(plan, [node_id])
    while True:
        trial = state.copy()
        event = RetryTaskStarted(
            run_id=state.run_id,
            timestamp_ms=state.updated_at_ms or 0,
            node_id=node_id,
            iteration=BASE_ITERATION,
            reset_dependents=True,
            reset_nodes=tuple(reset),
        )
        apply_event(trial, event, seq=trial.seq + 1)
        try:
            again = _render(wf, trial, input_value)
        except Exception:  # the resume will report it; the graph rules still hold
            break
        vanished = [n for n in plan.leaves if n not in again.leaves and n not in reset]
        if not vanished:
            break
        reset |= set(vanished) | _graph_dependents(plan, vanished)
    return [n for n in plan.leaves if n in reset and n != node_id]


# ---------------------------------------------------------------------- operations


async def rewind(
    run_id: str,
    *,
    frame: int,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    force: bool = False,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    clock: Clock | None = None,
) -> RunState:
    """Rewind a run to frame `frame`: append ``RunRewound{toFrameNo, toSeq}``. Awaits I/O.

    The run's state becomes exactly its state at that frame (tasks in flight then are
    running again in the state, and a resume closes their attempts as ``abandoned``
    and runs them again); the events after it stay in the log for audit but no longer
    count. The run is then resumable: `resume_run` (or ``smithers up --resume``)
    continues it from there.

    Args:
        run_id: The run.
        frame: Frame number of the run (see ``timeline``).
        db: Database path (see `resolve_db_path`); must exist. With `store`, it only
            locates the NDJSON mirror of what is appended (no mirror when None).
        store: An open `EventStore` to use instead of opening `db` (not closed here).
        force: Rewind even though a process on another host seems to own the run
            (fresh lease). Never overrides a live owner on this host.
        stale_threshold_ms: An owner silent for this long (ms) is stale (see
            `judge_owner`).
        clock: Time source of the event's timestamp (tests pass a fake).

    Returns:
        The run's state after the rewind (at the `RunRewound` event's seq).

    Raises:
        RunNotFoundError: if the run does not exist.
        SnapshotNotFoundError: if the run has no frame `frame` (the message gives its range).
        RunOwnerAliveError, RunStillRunningError: if the run is still being driven.
        SeqConflictError: if another writer appended meanwhile (nothing kept).
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.

    Example:
        >>> state = await rewind("run-lx2k3j-1a2b3c", frame=4)  # doctest: +SKIP
        >>> result = await resume_run(state.run_id)  # doctest: +SKIP
    """
    async with _session(db, store) as session:
        now = _now(clock)
        state = await _head(session.store, run_id)
        if state is None:
            # Not ended: someone may still drive it, which only the folded state tells.
            state = await load_state(session.store, run_id)
            await check_resumable(
                session.store, state, now_ms=now, stale_ms=stale_threshold_ms, force=force
            )
        target = await state_at(session.store, run_id, frame=frame)
        event = RunRewound(run_id=run_id, timestamp_ms=now, to_frame_no=frame, to_seq=target.seq)
        seq = await session.append(run_id, [event], expected_seq=state.seq, status=target.status)
        return apply_rewind(state, event, seq=seq, target=target)


async def _head(store: EventStore, run_id: str) -> RunState | None:
    """For an ended run: a stand-in state with what a rewind needs (seq, next frame no).

    An ended run has no owner to check, so the run's full state (a checkpoint decode
    and a fold) is not needed: its last seq comes from the runs index and the next frame
    number from the log's last `FrameCommitted` (frame numbers only grow). Returns None
    for a run that has not ended, or when the tail has no frame. Awaits reads.
    """
    record = await store.get_run(run_id)
    if (
        record is None
        or not is_run_status(record.status)
        or record.status not in TERMINAL_RUN_STATUSES
    ):
        return None
    after = record.last_seq
    while after > 0:
        start = max(after - 256, 0)
        rows = await store.read(run_id, after_seq=start, upto_seq=after)
        for row in reversed(rows):
            event = decode_event(row.type, row.data)
            if isinstance(event, FrameCommitted):
                head = RunState(run_id=run_id, seq=record.last_seq, status=record.status)
                head.next_frame_no = event.frame_no + 1
                return head
        after = start
    return None


async def _fork(
    session: _Session,
    at: RunState,
    *,
    frame: int,
    reset_nodes: Iterable[str],
    input: Any,
    label: str | None,
    run_id_new: str | None,
    replay: bool,
    now: int,
) -> str:
    """Append the child's first events; `at` is the parent's state at frame `frame`."""
    resets = tuple(dict.fromkeys(reset_nodes))
    known = list(dict.fromkeys(node_id for node_id, _ in at.nodes))
    for node_id in resets:
        if node_id not in known:
            # Not mounted by the frame: it runs in the fork anyway, so likely a typo.
            raise NodeNotFoundError(at.run_id, node_id, known)
    child = run_id_new or new_run_id()
    events: list[Event] = [
        RunForked(
            run_id=child,
            timestamp_ms=now,
            parent_run_id=at.run_id,
            parent_frame_no=frame,
            parent_seq=at.seq,
            reset_nodes=resets,
            branch_label=label,
            input=_input_raw(input),
        )
    ]
    if replay:
        events.append(
            ReplayStarted(
                run_id=child, timestamp_ms=now, parent_run_id=at.run_id, parent_frame_no=frame
            )
        )
    # "pending" until its first RunStarted, as the fold says: not a stale running run.
    await session.append(
        child, events, expected_seq=0, status="pending", workflow_name=at.workflow_name
    )
    return child


async def fork(
    run_id: str,
    *,
    frame: int,
    reset_nodes: Iterable[str] = (),
    input: Any = None,
    label: str | None = None,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    run_id_new: str | None = None,
    clock: Clock | None = None,
) -> str:
    """Fork a run at frame `frame` into a new run, not started yet. Awaits I/O.

    Appends one event, the child's first: ``RunForked{parentRunId, parentFrameNo,
    parentSeq, resetNodes, branchLabel}``. The child's state is the parent's state at
    that frame with `reset_nodes` back to pending, read through the parent's log
    (nothing is copied, so the cost does not grow with the parent's length). The
    parent's log is not touched. Run the child with `resume_run` (its tasks in flight
    at the frame run again); the child records no workflow identity until then, so it
    may run on edited code.

    Args:
        run_id: The parent run.
        frame: Frame number of the parent (see ``timeline``).
        reset_nodes: Node ids the child runs again although they finished by the frame.
        input: The child's input (a JSON object); None keeps the parent's.
        label: Human-readable branch label (``branchLabel``).
        db: Database path (see `resolve_db_path`); must exist. With `store`, it only
            locates the NDJSON mirror of what is appended (no mirror when None).
        store: An open `EventStore` to use instead of opening `db` (not closed here).
        run_id_new: The child's run id (default: a new one).
        clock: Time source of the event's timestamp.

    Returns:
        The child's run id.

    Raises:
        RunNotFoundError: if the parent does not exist.
        SnapshotNotFoundError: if the parent has no frame `frame`.
        NodeNotFoundError: if a reset node is not a node of the parent.
        InvalidInputError: if `input` is not a JSON object.
        RunAlreadyExistsError: if `run_id_new` is taken.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.

    Example:
        >>> child = await fork(run_id, frame=3, input={"start": 7}, label="try-7")  # doctest: +SKIP
        >>> result = await resume_run(child)  # doctest: +SKIP
    """
    async with _session(db, store) as session:
        at = await state_at(session.store, run_id, frame=frame)
        return await _fork(
            session,
            at,
            frame=frame,
            reset_nodes=reset_nodes,
            input=input,
            label=label,
            run_id_new=run_id_new,
            replay=False,
            now=_now(clock),
        )


async def replay(
    run_id: str,
    *,
    frame: int,
    input: Any = None,
    reset_nodes: Iterable[str] = (),
    label: str | None = None,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    workflow: Workflow | None = None,
    run_id_new: str | None = None,
    **run_options: Any,
) -> RunResult:
    """Replay a run from frame `frame`: fork it, record ``ReplayStarted``, run the fork now.

    The child's log starts ``RunForked``, ``ReplayStarted``; then it is resumed, so
    what was not finished at the frame (and `reset_nodes`) runs again, with `input` if
    given. The workflow is the one the parent recorded unless `workflow` is given (its
    code may have changed since: forks are for that). Awaits I/O and runs to the end.

    Args:
        run_id: The parent run.
        frame: Frame number of the parent (see ``timeline``).
        input: The replay's input (a JSON object); None keeps the parent's.
        reset_nodes: Node ids to run again although they finished by the frame.
        label: Branch label of the fork.
        db: Database path (see `resolve_db_path`); must exist. With `store`, it only
            locates the NDJSON mirror of what is appended (no mirror when None).
        store: An open `EventStore` to use instead of opening `db` (not closed here).
        workflow: The workflow to run (default: the parent's recorded file).
        run_id_new: The child's run id (default: a new one).
        **run_options: Other keyword arguments of `run_workflow` (``max_concurrency``,
            ``on_progress``, ``clock``, …).

    Returns:
        The child's `RunResult` (its `run_id` is the fork's).

    Raises:
        Everything `fork` and `run_workflow` raise; `InvalidInputError` if `input` fails
        the workflow's input schema (nothing is recorded then).

    Example:
        >>> result = await replay(run_id, frame=3, input={"start": 7})  # doctest: +SKIP
        >>> result.run_id != run_id, result.status  # doctest: +SKIP
        (True, 'finished')
    """
    clock: Clock | None = run_options.get("clock")
    async with _session(db, store) as session:
        at = await state_at(session.store, run_id, frame=frame)
        wf, path = _workflow(at, workflow)
        if input is not None:
            check_input(wf, input)  # refuse before anything is recorded
        child = await _fork(
            session,
            at,
            frame=frame,
            reset_nodes=reset_nodes,
            input=input,
            label=label,
            run_id_new=run_id_new,
            replay=True,
            now=_now(clock),
        )
        target = session.run_kwargs
    options = _run_options(at, path, run_options)
    return await run_workflow(wf, run_id=child, resume=True, **target, **options)


async def retry_task(
    run_id: str,
    *,
    node: str,
    iteration: int = 0,
    deps: bool = True,
    force: bool = False,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    workflow: Workflow | None = None,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    **run_options: Any,
) -> RunResult:
    """Run a task again, with its dependents, in the same run. Awaits I/O.

    Appends ``RetryTaskStarted{nodeId, iteration, resetDependents, resetNodes}`` (with
    ``RunStatusChanged("running")`` when the run had ended: it is reopened), resumes
    the run, which re-runs exactly the reset nodes (their attempts keep counting), and
    appends ``RetryTaskFinished{resetNodes, success}``. Dependents come from the
    workflow rendered at the run's current state (`task_dependents`): later members of
    its sequences, joins, ``depends_on``, tasks mounted on its output. `resetNodes`
    lists the node and the dependents that have something to clear (not still
    pending). `success` says whether the node finished this time; `error` is set only
    when the retry operation itself failed (the resume raised).

    Args:
        run_id: The run.
        node: The task's node id.
        iteration: Loop iteration of the node (0 outside loops); recorded on the events
            (a reset applies to every iteration of the node ids).
        deps: Also reset the node's dependents (``--no-deps`` is False).
        force: Proceed although a process on another host seems to own the run (fresh
            lease); never overrides a live owner on this host.
        db: Database path (see `resolve_db_path`); must exist. With `store`, it only
            locates the NDJSON mirror of what is appended (no mirror when None).
        store: An open `EventStore` to use instead of opening `db` (not closed here).
        workflow: The workflow (default: the file the run recorded).
        stale_threshold_ms: An owner silent for this long (ms) is stale (see
            `judge_owner`).
        **run_options: Other keyword arguments of `run_workflow` (``max_concurrency``,
            ``on_progress``, ``clock``, …).

    Returns:
        The run's `RunResult` after the resume.

    Raises:
        RunNotFoundError: if the run does not exist.
        NodeNotFoundError: if the run has no node `node` (in `iteration`).
        RunNotResumableError: if the run continued as a new run.
        RunOwnerAliveError, RunStillRunningError: if the run is still being driven
            (RunStillRunningError only without `force`).
        ResumeMetadataMismatchError: if the workflow's code changed since the run began
            (fork or replay it instead); nothing is recorded.
        SeqConflictError: if another writer appended meanwhile.
        Everything `run_workflow(resume=True)` raises.

    Example:
        >>> result = await retry_task(run_id, node="second")  # doctest: +SKIP
    """
    clock: Clock | None = run_options.get("clock")
    async with _session(db, store) as session:
        state = await load_state(session.store, run_id)
        if state.node(node, iteration) is None:
            known = list(dict.fromkeys(node_id for node_id, _ in state.nodes))
            raise NodeNotFoundError(run_id, node, known)
        if state.status == "continued":
            raise RunNotResumableError(
                run_id, state.status, "it continued as a new run; retry the task there"
            )
        wf, path = _workflow(state, workflow)
        now = _now(clock)
        await check_resumable(
            session.store,
            state,
            now_ms=now,
            stale_ms=stale_threshold_ms,
            force=force,
            wf=wf,
            workflow_path=path,
        )
        dependents = task_dependents(wf, state, node) if deps else []
        clear = [
            n
            for n in dependents
            if any(
                rec.state != "pending" or rec.attempts
                for (nid, _), rec in state.nodes.items()
                if nid == n
            )
        ]
        resets = (node, *clear)
        # Attempts a crash left open on reset nodes: closed now, as a resume would.
        events: list[Event] = [*close_open_attempts(state, now_ms=now, only=resets)]
        events.append(
            RetryTaskStarted(
                run_id=run_id,
                timestamp_ms=now,
                node_id=node,
                iteration=iteration,
                reset_dependents=deps,
                reset_nodes=resets,
            )
        )
        reopen = state.status in TERMINAL_RUN_STATUSES
        if reopen:
            events.append(RunStatusChanged(run_id=run_id, timestamp_ms=now, status="running"))
        await session.append(
            run_id, events, expected_seq=state.seq, status="running" if reopen else None
        )
        target = session.run_kwargs
    options = _run_options(state, path, run_options)
    try:
        result = await run_workflow(
            wf, run_id=run_id, resume=True, force=force, **target, **options
        )
    except BaseException as e:
        with anyio.CancelScope(shield=True):
            await _retry_finished(db, store, run_id, node, iteration, resets, clock, error=e)
        raise
    await _retry_finished(db, store, run_id, node, iteration, resets, clock, error=None)
    return result


async def _retry_finished(
    db: str | os.PathLike[str] | None,
    store: EventStore | None,
    run_id: str,
    node: str,
    iteration: int,
    resets: tuple[str, ...],
    clock: Clock | None,
    *,
    error: BaseException | None,
) -> None:
    """Append ``RetryTaskFinished``; if the retry already failed, only log a failure."""
    try:
        async with _session(db, store) as session:
            state = await load_state(session.store, run_id)
            rec = state.node(node, iteration)
            event = RetryTaskFinished(
                run_id=run_id,
                timestamp_ms=_now(clock),
                node_id=node,
                iteration=iteration,
                reset_nodes=resets,
                success=error is None and rec is not None and rec.state == "finished",
                error=error_info(error) if error is not None else None,
            )
            await session.append(run_id, [event], expected_seq=state.seq)
    except SmithersError:
        if error is None:
            raise
        log.exception("could not record the end of the retry of %s in run %s", node, run_id)
