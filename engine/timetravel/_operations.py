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

import logging
from typing import TYPE_CHECKING, Any

from smithers.eventstore import (
    decode_event,
)
from smithers.eventstore.events import (
    TERMINAL_RUN_STATUSES,
    Event,
    FrameCommitted,
    ReplayStarted,
    RunForked,
    RunRewound,
    RunStatusChanged,
)
from smithers.projections import RunState, apply_event, apply_rewind, is_run_status

from .._run_ids import EXISTING_RUN_HINT, validate_run_id
from ..authoring import check_input
from ..errors import (
    NodeNotFoundError,
    RunNotResumableError,
    WorkflowMissingDefaultError,
)
from ..history import load_state, state_at
from ..lifecycle import (
    DEFAULT_STALE_THRESHOLD_MS,
    RunResult,
    api_actor,
    check_determinism,
    check_resumable,
    new_run_id,
    run_workflow,
)
from ._session import _input_raw, _now, _run_options, _session, _workflow

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    from smithers.eventstore import EventStore
    from smithers.eventstore.events import Actor

    from .._clock import Clock
    from ..authoring import Workflow
    from ._session import _Session

__all__ = ("fork", "replay", "rewind")

log = logging.getLogger("smithers.engine")


async def rewind(
    run_id: str,
    *,
    frame: int,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    force: bool = False,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    clock: Clock | None = None,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> RunState:
    """Rewind a run to frame `frame`: append ``RunRewound{toFrameNo, toSeq}``. Awaits I/O.

    The run's state becomes exactly its state at that frame (tasks in flight then are
    running again in the state, and a resume closes their attempts as ``abandoned``
    and runs them again); the events after it stay in the log for audit but no longer
    count. A run that was running at the frame also gets ``RunStatusChanged
    ("waiting-resume")`` (`_rewound_status`): no process drives it now, and the
    supervisor leaves it alone. The run is then resumable: `resume_run` (or ``smithers
    up --resume``) continues it from there.

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
        by: Who rewinds, recorded as the event's ``actor`` (the audit trail); None:
            ``$SMITHERS_ACTOR``, else the OS user.
        reason: Why, recorded with `by`.
        actor: The `Actor` to record instead of one built from `by` and `reason`
            (interface ``"api"``): the CLI passes its own.

    Returns:
        The run's state after the rewind (at its last event's seq), status
        ``"waiting-resume"`` if it was running at the frame.

    Raises:
        InvalidInputError: if `run_id` is not a valid run id (`validate_run_id`), or
            `by`/`reason` is not printable text of a sane length.
        RunNotFoundError: if the run does not exist.
        SnapshotNotFoundError: if the run has no frame `frame` (the message gives its range).
        RunOwnerAliveError, RunStillRunningError: if the run is still being driven.
        SeqConflictError: if another writer appended meanwhile (nothing kept).
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.

    Example:
        >>> state = await rewind("run-lx2k3j-1a2b3c", frame=4)  # doctest: +SKIP
        >>> result = await resume_run(state.run_id)  # doctest: +SKIP
    """
    validate_run_id(run_id, hint=EXISTING_RUN_HINT)
    who = api_actor(actor, by=by, reason=reason)
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
        event = RunRewound(
            run_id=run_id, timestamp_ms=now, to_frame_no=frame, to_seq=target.seq, actor=who
        )
        events: list[Event] = [event]
        status = _rewound_status(target.status)
        if status != target.status:
            events.append(RunStatusChanged(run_id=run_id, timestamp_ms=now, status=status))
        seq = await session.append(run_id, events, expected_seq=state.seq, status=status)
        first = seq - len(events) + 1
        after = apply_rewind(state, event, seq=first, target=target)
        for i, extra in enumerate(events[1:], start=1):
            apply_event(after, extra, seq=first + i)
        return after


def _rewound_status(status: str) -> str:
    """Return the status a run rewound to a frame where it had `status` gets. No I/O.

    A run that was running at the frame is ``"waiting-resume"``: the rewind is
    appended from outside any activation, so nothing drives the run until a person
    resumes it (``smithers up --resume``); ``"running"`` would make it look like a run
    whose owner died, which the supervisor restarts. A run parked at the frame
    (``waiting-approval``, ``waiting-event``, ``waiting-timer``) stays parked: what
    wakes it is the same. Any other status is kept.
    """
    return "waiting-resume" if status == "running" else status


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


def _check_ids(run_id: str, run_id_new: str | None) -> None:
    """Refuse an invalid parent or child run id before anything is opened."""
    validate_run_id(run_id, hint=EXISTING_RUN_HINT)
    if run_id_new is not None:
        validate_run_id(run_id_new, what="new run id")


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
    actor: Actor,
) -> str:
    """Append the child's first events; `at` is the parent's state at frame `frame`."""
    resets = tuple(dict.fromkeys(reset_nodes))
    known = at.node_ids()
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
            actor=actor,
        )
    ]
    if replay:
        events.append(
            ReplayStarted(
                run_id=child,
                timestamp_ms=now,
                parent_run_id=at.run_id,
                parent_frame_no=frame,
                actor=actor,
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
    workflow: Workflow | None = None,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> str:
    """Fork a run at frame `frame` into a new run, not started yet. Awaits I/O.

    Appends one event, the child's first: ``RunForked{parentRunId, parentFrameNo,
    parentSeq, resetNodes, branchLabel}``. The child's state is the parent's state at
    that frame with `reset_nodes` back to pending, read through the parent's log
    (nothing is copied, so the cost does not grow with the parent's length). The
    parent's log is not touched. Run the child with `resume_run` (its tasks in flight
    at the frame run again); the child records no workflow identity until then, so it
    may run on edited code. A given `input` is checked at once against the input type
    of the workflow the fork will run (`workflow`, else the file the parent recorded,
    imported as a resume would), so a bad input is refused before anything is
    recorded; when that file cannot be imported (a run started from Python code, a
    file gone), the input is checked when the fork runs.

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
        workflow: The workflow whose input type checks `input` (default: the parent's
            recorded file).
        by: Who forks, recorded as the ``actor`` of ``RunForked``; None:
            ``$SMITHERS_ACTOR``, else the OS user.
        reason: Why, recorded with `by`.
        actor: The `Actor` to record instead of one built from `by` and `reason`
            (interface ``"api"``): the CLI passes its own.

    Returns:
        The child's run id.

    Raises:
        RunNotFoundError: if the parent does not exist.
        SnapshotNotFoundError: if the parent has no frame `frame`.
        NodeNotFoundError: if a reset node is not a node of the parent.
        InvalidInputError: if `input` is not a JSON object or fails the workflow's
            input type, `run_id` or `run_id_new` is not a valid run id
            (`validate_run_id`), or `by`/`reason` is not printable text of a sane
            length; nothing is recorded then.
        EngineError: code ``INVALID_INPUT`` if the recorded workflow file raises while
            importing (only when `input` is given).
        RunAlreadyExistsError: if `run_id_new` is taken.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.

    Example:
        >>> child = await fork(run_id, frame=3, input={"start": 7}, label="try-7")  # doctest: +SKIP
        >>> result = await resume_run(child)  # doctest: +SKIP
    """
    _check_ids(run_id, run_id_new)
    who = api_actor(actor, by=by, reason=reason)
    async with _session(db, store) as session:
        at = await state_at(session.store, run_id, frame=frame)
        _check_fork_input(at, input, workflow)
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
            actor=who,
        )


def _check_fork_input(at: RunState, input: Any, workflow: Workflow | None) -> None:
    """Refuse a fork's `input` that the workflow it will run rejects; nothing is recorded.

    The workflow is `workflow`, else the parent's recorded file. A file that cannot be
    found or has no such workflow (a run started from Python code) leaves the check to
    the fork's first run; a file that raises while importing is reported now.
    """
    if input is None:
        return
    _input_raw(input)  # a JSON object, serialisable
    wf = workflow
    if wf is None:
        try:
            wf, _ = _workflow(at, None)
        except (RunNotResumableError, WorkflowMissingDefaultError) as e:
            log.debug("fork of %s: input checked when the fork runs (%s)", at.run_id, e)
            return
    check_input(wf, input)


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
    allow_nondeterminism: bool = False,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
    **run_options: Any,
) -> RunResult:
    """Replay a run from frame `frame`: fork it, record ``ReplayStarted``, run the fork now.

    The child's log starts ``RunForked``, ``ReplayStarted``; then it is resumed, so
    what was not finished at the frame (and `reset_nodes`) runs again, with `input` if
    given. The workflow is the one the parent recorded unless `workflow` is given (its
    code may have changed since: forks are for that). Before anything is recorded, the
    workflow re-renders the parent's frame `frame` and must give the tree the parent
    recorded there (`check_determinism`): edited code that renders the same tree is
    fine, a different tree is refused. Awaits I/O and runs to the end.

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
        allow_nondeterminism: Replay although the workflow renders the parent's frame
            `frame` differently from what the parent recorded.
        by: Who replays, recorded as the ``actor`` of ``RunForked``,
            ``ReplayStarted`` and the fork's ``RunStarted``; None: ``$SMITHERS_ACTOR``,
            else the OS user.
        reason: Why, recorded with `by`.
        actor: The `Actor` to record instead of one built from `by` and `reason`
            (interface ``"api"``): the CLI passes its own.
        **run_options: Other keyword arguments of `run_workflow` (``max_concurrency``,
            ``on_progress``, ``clock``, …).

    Returns:
        The child's `RunResult` (its `run_id` is the fork's).

    Raises:
        Everything `fork` and `run_workflow` raise; `InvalidInputError` if `input` fails
        the workflow's input schema, or a run id is invalid; `ResumeFrameMismatchError`
        if the workflow re-renders the parent's frame `frame` differently (not with
        `allow_nondeterminism`). Nothing is recorded then.

    Example:
        >>> result = await replay(run_id, frame=3, input={"start": 7})  # doctest: +SKIP
        >>> result.run_id != run_id, result.status  # doctest: +SKIP
        (True, 'finished')
    """
    _check_ids(run_id, run_id_new)
    who = api_actor(actor, by=by, reason=reason)
    clock: Clock | None = run_options.get("clock")
    async with _session(db, store) as session:
        at = await state_at(session.store, run_id, frame=frame)
        wf, path = _workflow(at, workflow)
        if input is not None:
            check_input(wf, input)  # refuse before anything is recorded
        if not allow_nondeterminism:
            await check_determinism(session.store, at, wf, replay=True)
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
            actor=who,
        )
        target = session.run_kwargs
    options = _run_options(at, path, run_options)
    # The fork's resume would check the same frame (its parent's `frame`) again.
    options["allow_nondeterminism"] = True
    return await run_workflow(wf, run_id=child, resume=True, actor=who, **target, **options)
