"""Deciding approvals (and, in `_signals`, sending signals): requests appended to a run's log.

A decision (``ApprovalGranted``/``ApprovalDenied``) or a signal (``SignalReceived``)
is a cross-process request, as a cancel is (`cancel_run`): whoever decides appends
it to the run's log, guarded by ``expected_seq`` = the seq it read. On a conflict
(the owner, or another decider, appended meanwhile) the log is read again and the
request checked again, so of two concurrent ``approve`` of one node exactly one is
recorded and the other is refused with ``APPROVAL_ALREADY_DECIDED``.

Who acts on the request: a live owner picks it up at its next heartbeat (it accepts
decisions and signals appended by others); a parked run (status ``waiting-*``) has
no owner, and the result says so (``parked``) so that the caller resumes it
(``smithers approve`` does in the background, `RunHandle.approve` in the client's
task group). Nothing here starts a process or runs a workflow.

Subflows: a request to a run reaches into its active descendants (the child runs of
its `Subflow` nodes, recursively; `active_descendants`) when the run itself has
nothing for it. An approval is looked for in the run named first, then in its
descendants (one found there is decided there; several are `AMBIGUOUS_APPROVAL`). A
signal goes to the run's own oldest matching waiter; if no node of the run waits for
it, to the descendants' oldest matching waiter (the wait that began first, by its
``NodeWaitingEvent`` time; ties in tree order); if none waits anywhere it is recorded
in the run named, resolving nothing. The result names the run to resume
(``resume_run_id``): the run named when it is parked (its resume resumes the parked
child through its `Subflow` node, so the whole tree goes on in one process), else the
descendant itself when it is parked under a live parent.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from smithers.eventstore import (
    EventStore,
    SeqConflictError,
    decode_json,
)
from smithers.eventstore.events import (
    TERMINAL_RUN_STATUSES,
    ApprovalDenied,
    ApprovalGranted,
)
from smithers.projections import apply_event

from .._clock import Clock, SystemClock
from .._run_ids import parse_child_run_id
from ..activation import append_to_run as _append_to_run
from ..activation import default_log_dir
from ..errors import (
    AmbiguousApprovalError,
    ApprovalAlreadyDecidedError,
    InvalidInputError,
    NodeNotFoundError,
    NoPendingApprovalsError,
)
from ..history import SUPERVISOR_STREAM_ID, active_descendants, load_state
from ._actors import api_actor
from ._requests import (
    _ROUNDS,
    DecisionResult,
    PendingApproval,
    _check_iteration,
    _check_name,
    _check_run,
    _check_text,
    _when,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    from smithers.eventstore.events import Actor
    from smithers.projections import NodeRecord, RunState


__all__ = (
    "approve",
    "deny",
    "list_pending_approvals",
)

# ---------------------------------------------------------------------- approvals


def _pending(state: RunState) -> list[NodeRecord]:
    return state.pending_approvals()


def _find_approval(
    state: RunState, node_id: str | None, iteration: int | None
) -> tuple[NodeRecord, bool]:
    """The node to decide, and whether its approval is already decided.

    Raises:
        NoPendingApprovalsError, AmbiguousApprovalError, NodeNotFoundError: see `approve`.
    """
    rid = state.run_id
    if node_id is None and iteration is not None:
        # A loop's pass named without its node: the approval asked in that pass.
        asked_in = {r.node_id for r in state.nodes.values() if r.approval is not None}
        at = [r for r in _pending(state) if r.iteration == iteration]
        if len(at) > 1:
            raise AmbiguousApprovalError(
                rid,
                [(r.node_id, r.iteration, r.approval.title if r.approval else None) for r in at],
            )
        if at:
            node_id = at[0].node_id
        else:
            asked_at = {n for n in asked_in if (n, iteration) in state.nodes}
            if len(asked_at) != 1:
                raise NoPendingApprovalsError(
                    rid, f"no approval waits in iteration {iteration} ({state.status})"
                )
            node_id = asked_at.pop()
    if node_id is None:
        pending = _pending(state)
        if not pending:
            # Decided, but the run has not acted on it yet (parked, or a decider that
            # won a race): say who decided, rather than "nothing waits".
            undone = [
                r
                for r in state.nodes.values()
                if r.state == "waiting-approval" and r.approval and r.approval.decision
            ]
            if len(undone) == 1:
                return undone[0], True
        if state.status in TERMINAL_RUN_STATUSES and not pending:
            raise NoPendingApprovalsError(rid, f"the run has ended ({state.status})")
        if not pending:
            raise NoPendingApprovalsError(rid, f"nothing waits for a decision ({state.status})")
        if len(pending) > 1:
            raise AmbiguousApprovalError(
                rid,
                [
                    (r.node_id, r.iteration, r.approval.title if r.approval else None)
                    for r in pending
                ],
            )
        return pending[0], False
    records = [r for r in state.nodes.values() if r.node_id == node_id]
    if not records:
        raise NodeNotFoundError(rid, node_id, sorted({k for k, _ in state.nodes}))
    if iteration is not None:
        records = [r for r in records if r.iteration == iteration]
        if not records:
            raise NoPendingApprovalsError(
                rid, f"node {node_id!r} has no iteration {iteration}", node_id=node_id
            )
    asked = [r for r in records if r.approval is not None]
    if not asked:
        state_now = records[-1].state
        why = (
            f"node {node_id!r} has not asked for a decision yet (it is {state_now})"
            if state_now == "pending"
            else f"node {node_id!r} is not an approval (it is {state_now})"
        )
        raise NoPendingApprovalsError(rid, why, node_id=node_id)
    open_ = [r for r in asked if r.approval is not None and r.approval.decision is None]
    if len(open_) > 1:
        raise AmbiguousApprovalError(
            rid,
            [(r.node_id, r.iteration, r.approval.title if r.approval else None) for r in open_],
        )
    if open_:
        return open_[0], False
    return asked[-1], True  # decided: the latest decided iteration


def _already(state: RunState, rec: NodeRecord) -> ApprovalAlreadyDecidedError:
    approval = rec.approval
    assert approval is not None
    return ApprovalAlreadyDecidedError(
        state.run_id,
        rec.node_id,
        rec.iteration,
        decision=approval.decision or "decided",
        decided_by=approval.decided_by,
        decided_at_ms=approval.decided_at_ms,
        note=approval.note,
        when=_when(approval.decided_at_ms),
    )


def _check_choice(
    rec: NodeRecord, granted: bool, selected: str | None, ranked: tuple[str, ...] | None
) -> None:
    """Refuse a selection/ranking that does not fit the approval's mode and options."""
    approval = rec.approval
    assert approval is not None
    mode, options = approval.mode, approval.options
    where = {"nodeId": rec.node_id, "iteration": rec.iteration, "mode": mode}
    listed = ", ".join(options)
    if selected is not None and mode != "select":
        raise InvalidInputError(
            f"{rec.node_id!r} is a {mode!r} approval: a selection applies only to 'select'.",
            details=where,
        )
    if ranked is not None and mode != "rank":
        raise InvalidInputError(
            f"{rec.node_id!r} is a {mode!r} approval: a ranking applies only to 'rank'.",
            details=where,
        )
    if not granted:
        return
    if mode == "select":
        if selected is None or selected not in options:
            got = "none" if selected is None else repr(selected)
            raise InvalidInputError(
                f"{rec.node_id!r} asks to select one of: {listed}; got {got}.",
                details={**where, "options": list(options), "selected": selected},
                hint=f"Pass one of them, e.g. --select {options[0]}"
                if options
                else "This approval has no options.",
            )
    elif mode == "rank" and (ranked is None or sorted(ranked) != sorted(options)):
        got = "none" if ranked is None else ",".join(ranked)
        raise InvalidInputError(
            f"{rec.node_id!r} asks to rank all of: {listed} (each once); got {got}.",
            details={**where, "options": list(options), "ranked": list(ranked or ())},
            hint=f"Pass them in your order, e.g. --rank {','.join(options)}",
        )


async def _decide(
    store: EventStore,
    run_id: str,
    node_id: str | None,
    *,
    granted: bool,
    iteration: int | None,
    note: str | None,
    decided_by: str | None,
    selected: str | None,
    ranked: Iterable[str] | None,
    db: str | os.PathLike[str] | None,
    clock: Clock | None,
    actor: Actor,
) -> DecisionResult:
    _check_run(run_id)
    node_id = _check_name(node_id, "node id", optional=True)
    iteration = _check_iteration(iteration)
    note = _check_text(note, "note")
    decided_by = _check_text(decided_by, "decider's name")
    selected = _check_text(selected, "selected option")
    ranking = None if ranked is None else tuple(str(r) for r in ranked)
    clock = clock or SystemClock()
    requested = run_id
    run_id = await _approval_run(store, requested, node_id, iteration)
    log_dir = default_log_dir(Path(db), run_id) if db is not None else None
    conflict: SeqConflictError | None = None
    for _ in range(_ROUNDS):
        state = await load_state(store, run_id)
        rec, decided = _find_approval(state, node_id, iteration)
        if decided:
            raise _already(state, rec)
        # The one chosen stays the one meant: after a conflict, a racing decider that
        # decided it first makes this call APPROVAL_ALREADY_DECIDED, not another pick.
        node_id, iteration = rec.node_id, rec.iteration
        _check_choice(rec, granted, selected, ranking)
        now = clock.now_ms()
        event: ApprovalGranted | ApprovalDenied
        if granted:
            event = ApprovalGranted(
                run_id=run_id,
                timestamp_ms=now,
                node_id=rec.node_id,
                iteration=rec.iteration,
                note=note,
                decided_by=decided_by,
                selected=selected,
                ranked=ranking or (),
                actor=actor,
            )
        else:
            event = ApprovalDenied(
                run_id=run_id,
                timestamp_ms=now,
                node_id=rec.node_id,
                iteration=rec.iteration,
                note=note,
                decided_by=decided_by,
                actor=actor,
            )
        try:
            seq = await _append_to_run(
                store, run_id, [event], expected_seq=state.seq, log_dir=log_dir
            )
        except SeqConflictError as e:
            conflict = e
            continue  # someone appended: read again, check again
        status = state.status
        parked, resume_id, queue = await _resume_target(store, requested, state)
        apply_event(state, event, seq=seq)
        return DecisionResult(
            run_id=run_id,
            node_id=rec.node_id,
            iteration=rec.iteration,
            decision="granted" if granted else "denied",
            seq=seq,
            node=state.nodes[(rec.node_id, rec.iteration)],
            run_status=status,
            parked=parked,
            requested_run_id=requested,
            resume_run_id=resume_id,
            queue=queue if parked else None,
        )
    assert conflict is not None
    raise conflict


async def _approval_run(
    store: EventStore, run_id: str, node_id: str | None, iteration: int | None
) -> str:
    """The run whose approval a request to `run_id` decides: `run_id`, or a descendant.

    The run named first (as `_find_approval` picks); if it has nothing to decide (or
    no node `node_id`), its active descendants: the one holding the approval asked
    for. Raises the run's own error when no descendant holds one either.

    Raises:
        AmbiguousApprovalError: several descendants hold a matching approval (or one
            holds several); the details list them with their runs.
        NoPendingApprovalsError, NodeNotFoundError, InvalidInputError: as
            `_find_approval` on the run named.
    """
    state = await load_state(store, run_id)
    try:
        _find_approval(state, node_id, iteration)
    except (NoPendingApprovalsError, NodeNotFoundError) as e:
        miss: NoPendingApprovalsError | NodeNotFoundError = e
    else:
        return run_id
    if state.status in TERMINAL_RUN_STATUSES:
        raise miss
    found: list[tuple[RunState, NodeRecord]] = []
    decided: list[tuple[RunState, NodeRecord]] = []
    for child in await active_descendants(store, run_id):
        try:
            rec, done = _find_approval(child, node_id, iteration)
        except (NoPendingApprovalsError, NodeNotFoundError):
            continue
        (decided if done else found).append((child, rec))
    # Open approvals first; one decided already (and not yet acted on) is named only
    # when nothing is open, so that the request is refused as decided twice.
    if not found and len(decided) == 1:
        found = decided
    if not found:
        raise miss
    if len(found) > 1:
        raise AmbiguousApprovalError(
            run_id,
            [(r.node_id, r.iteration, r.approval.title if r.approval else None) for _, r in found],
            runs=[child.run_id for child, _ in found],
        )
    return found[0][0].run_id


async def _resume_target(
    store: EventStore, requested: str, state: RunState
) -> tuple[bool, str, str | None]:
    """``(parked, run to resume, its queue)`` after a request recorded in `state`'s run.

    `state` is the run's state when the request was recorded. In the run named: it,
    when parked. In a descendant: the run named when it is parked (its `Subflow` node
    resumes the child in the same process, and the tree goes on to its end); else the
    descendant when it is parked (its end wakes its parent, `wake_parent`); else
    nobody (a live owner picks the request up). The queue is the one the run to resume
    was submitted to (`RunState.queue`: a worker resumes it), or None.
    """
    if requested != state.run_id:
        top = await load_state(store, requested)
        if top.status.startswith("waiting-"):
            return True, requested, top.queue
    return state.status.startswith("waiting-"), state.run_id, state.queue


async def approve(
    store: EventStore,
    run_id: str,
    node_id: str | None = None,
    *,
    iteration: int | None = None,
    note: str | None = None,
    decided_by: str | None = None,
    selected: str | None = None,
    ranked: Iterable[str] | None = None,
    db: str | os.PathLike[str] | None = None,
    clock: Clock | None = None,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> DecisionResult:
    """Grant a pending approval: append ``ApprovalGranted`` to the run's log.

    As Smithers' ``smithers approve``. The approval is the node named, or, without
    `node_id`, the run's only pending one; when the run has none, the one waiting in
    its active descendants (the child runs of its `Subflow` nodes, recursively), which
    is decided there (the result's ``run_id``; ``resume_run_id`` says what to resume).
    The append is guarded by ``expected_seq``: on a conflict the log is read and
    everything checked again, so a decision is recorded at most once even when
    several processes decide at the same time. The run is not resumed here: the
    result's ``parked`` says whether someone must (see `RunHandle.approve` and
    ``smithers approve``, which do). Awaits I/O.

    Args:
        store: The open event store.
        run_id: The run.
        node_id: The approval's node; None: the run's only pending approval (or,
            with `iteration`, the one asked in that loop pass).
        iteration: The node's loop iteration; None: the one pending.
        note: The decider's note (recorded, and in the node's output).
        decided_by: Who decides (recorded as ``decidedBy``).
        selected: For a ``"select"`` approval: the option chosen (one of its options).
        ranked: For a ``"rank"`` approval: all its options, each once, in order.
        db: The database path, to extend the run's NDJSON mirror (None: no mirror).
        clock: Time source (tests pass a fake).
        by: Who decides, recorded as the event's ``actor`` (the audit trail); None:
            ``$SMITHERS_ACTOR``, else the OS user. `decided_by` is recorded as given.
        reason: Why, recorded in the ``actor``.
        actor: The `Actor` to record instead of one built from `by` and `reason`
            (interface ``"api"``): the CLI passes its own.

    Returns:
        A `DecisionResult`: the node and iteration decided, the event's seq, the node's
        record with the decision, the run's status and whether it is parked.

    Raises:
        InvalidInputError: ``INVALID_INPUT`` for a bad run id, node id, iteration,
            `by` or `reason`, a selection or ranking that does not fit the mode and options (a
            ``"select"`` approval needs `selected` among its options, a ``"rank"`` one
            `ranked` a permutation of its options); nothing is recorded.
        RunNotFoundError: if the run has no events.
        NodeNotFoundError: if the run has no node `node_id`.
        NoPendingApprovalsError: ``NO_PENDING_APPROVALS`` if nothing (or the node
            named) waits for a decision.
        AmbiguousApprovalError: ``AMBIGUOUS_APPROVAL`` without `node_id` (or
            `iteration`) while several approvals wait; its details list them.
        ApprovalAlreadyDecidedError: ``APPROVAL_ALREADY_DECIDED`` if the approval was
            decided already (by whom, what, when in the message and details).
        SeqConflictError: if others kept appending through every attempt (50).
        DatabaseWriteError: on storage failures.

    Example:
        >>> result = await approve(store, "run-lx2k3j-1a2b3c", "deploy")  # doctest: +SKIP
        >>> result.parked  # doctest: +SKIP
        True
    """
    return await _decide(
        store,
        run_id,
        node_id,
        granted=True,
        iteration=iteration,
        note=note,
        decided_by=decided_by,
        selected=selected,
        ranked=ranked,
        db=db,
        clock=clock,
        actor=api_actor(actor, by=by, reason=reason),
    )


async def deny(
    store: EventStore,
    run_id: str,
    node_id: str | None = None,
    *,
    iteration: int | None = None,
    note: str | None = None,
    decided_by: str | None = None,
    db: str | os.PathLike[str] | None = None,
    clock: Clock | None = None,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> DecisionResult:
    """Deny a pending approval: append ``ApprovalDenied`` to the run's log.

    As `approve` (which approval, concurrency, what is returned, errors), without a
    selection or ranking. What the denial does is the node's ``on_deny``: fail the
    node with ``APPROVAL_DENIED``, finish it with ``approved: false``, or skip it; a
    gated task (``needs_approval=True``) fails. `by`, `reason` and `actor` are
    `approve`'s. Awaits I/O.

    Raises:
        InvalidInputError, RunNotFoundError, NodeNotFoundError,
            NoPendingApprovalsError, AmbiguousApprovalError,
            ApprovalAlreadyDecidedError, SeqConflictError, DatabaseWriteError: as
            `approve`.
    """
    return await _decide(
        store,
        run_id,
        node_id,
        granted=False,
        iteration=iteration,
        note=note,
        decided_by=decided_by,
        selected=None,
        ranked=None,
        db=db,
        clock=clock,
        actor=api_actor(actor, by=by, reason=reason),
    )


async def list_pending_approvals(
    store: EventStore, *, run_id: str | None = None
) -> list[PendingApproval]:
    """Return the approvals waiting for a decision, in one run or across the database.

    Across the database, every run that is running or parked is folded (runs that
    ended have none pending), child runs included. For one run, its active
    descendants' (`Subflow` child runs, recursively) come after its own. Each names
    its tree's top run (``root_run_id``). Awaits reads; writes nothing.

    Args:
        store: The open event store.
        run_id: Only this run; None: every active run, newest run first.

    Returns:
        `PendingApproval`s, by run (newest first), then in mount order.

    Raises:
        InvalidInputError: if `run_id` is not a valid run id.
        RunNotFoundError: if `run_id` has no events.
    """
    states: list[RunState] = []
    if run_id is not None:
        _check_run(run_id)
        states.append(await load_state(store, run_id))
        if states[0].status not in TERMINAL_RUN_STATUSES:
            states.extend(await active_descendants(store, run_id))
    else:
        for r in await store.list_runs():
            if r.run_id != SUPERVISOR_STREAM_ID and (
                r.status == "running" or r.status.startswith("waiting-")
            ):
                states.append(await load_state(store, r.run_id))
    out: list[PendingApproval] = []
    for state in states:
        rid = state.run_id
        for rec in state.pending_approvals():
            approval = rec.approval
            assert approval is not None
            out.append(
                PendingApproval(
                    run_id=rid,
                    run_status=state.status,
                    workflow_name=state.workflow_name,
                    node_id=rec.node_id,
                    iteration=rec.iteration,
                    title=approval.title,
                    summary=approval.summary,
                    mode=approval.mode,
                    options=approval.options,
                    requested_at_ms=approval.requested_at_ms,
                    metadata=decode_json(approval.metadata),
                    root_run_id=_root_run_id(rid),
                )
            )
    return out


def _root_run_id(run_id: str) -> str:
    """The top of `run_id`'s `Subflow` tree, read from its id (`parse_child_run_id`). Pure.

    ``"a:child:x:0:child:y:0"`` -> ``"a"``; a run that is no child is its own root.
    """
    parsed = parse_child_run_id(run_id)
    while parsed is not None:
        run_id = parsed[0]
        parsed = parse_child_run_id(run_id)
    return run_id
