"""`retry_task`: run a task and its dependents again in the same run (DESIGN §7)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
from smithers.eventstore.errors import SmithersError
from smithers.eventstore.events import (
    TERMINAL_RUN_STATUSES,
    Event,
    LoopRewound,
    RetryTaskFinished,
    RetryTaskStarted,
    RunStatusChanged,
)

from .._run_ids import EXISTING_RUN_HINT, validate_run_id
from ..activation import (
    error_info,
)
from ..errors import (
    NodeNotFoundError,
    RunNotResumableError,
)
from ..history import load_state
from ..lifecycle import (
    DEFAULT_STALE_THRESHOLD_MS,
    RunResult,
    api_actor,
    check_resumable,
    close_open_attempts,
    run_workflow,
)
from ._dependents import enclosing_loop, task_dependents
from ._session import _now, _run_options, _session, _workflow

if TYPE_CHECKING:
    import os

    from smithers.eventstore import EventStore
    from smithers.eventstore.events import Actor

    from .._clock import Clock
    from ..authoring import Workflow

__all__ = ("retry_task",)

log = logging.getLogger("smithers.engine")


async def retry_task(
    run_id: str,
    *,
    node: str,
    iteration: int | None = None,
    deps: bool = True,
    force: bool = False,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    workflow: Workflow | None = None,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
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
        iteration: Loop iteration (pass) of the node to retry; default: its latest.
            Outside loops, 0 (a reset applies to every iteration). Inside a Loop, that
            pass of the node and of its dependents in the loop is reset, the loop goes
            back to that pass (``LoopRewound``) and its later passes run again;
            dependents after the loop are reset too.
        deps: Also reset the node's dependents (``--no-deps`` is False).
        force: Proceed although a process on another host seems to own the run (fresh
            lease); never overrides a live owner on this host.
        db: Database path (see `resolve_db_path`); must exist. With `store`, it only
            locates the NDJSON mirror of what is appended (no mirror when None).
        store: An open `EventStore` to use instead of opening `db` (not closed here).
        workflow: The workflow (default: the file the run recorded).
        stale_threshold_ms: An owner silent for this long (ms) is stale (see
            `judge_owner`).
        by: Who retries, recorded as the ``actor`` of ``RetryTaskStarted`` and of the
            resume's ``RunStarted``; None: ``$SMITHERS_ACTOR``, else the OS user.
        reason: Why, recorded with `by`.
        actor: The `Actor` to record instead of one built from `by` and `reason`
            (interface ``"api"``): the CLI passes its own.
        **run_options: Other keyword arguments of `run_workflow` (``max_concurrency``,
            ``on_progress``, ``clock``, …).

    Returns:
        The run's `RunResult` after the resume.

    Raises:
        InvalidInputError: if `run_id` is not a valid run id (`validate_run_id`), or
            `by`/`reason` is not printable text of a sane length.
        RunNotFoundError: if the run does not exist.
        NodeNotFoundError: if the run has no node `node` (in `iteration`).
        RunNotResumableError: if the run continued as a new run.
        RunOwnerAliveError, RunStillRunningError: if the run is still being driven
            (RunStillRunningError only without `force`).
        ResumeMetadataMismatchError: if the workflow's code changed since the run began
            (fork or replay it instead); nothing is recorded.
        ResumeFrameMismatchError: if the workflow re-renders the run's last frame
            differently (not with ``allow_nondeterminism=True`` in `run_options`);
            nothing is recorded.
        SeqConflictError: if another writer appended meanwhile.
        Everything `run_workflow(resume=True)` raises.

    Example:
        >>> result = await retry_task(run_id, node="second")  # doctest: +SKIP
    """
    validate_run_id(run_id, hint=EXISTING_RUN_HINT)
    who = api_actor(actor, by=by, reason=reason)
    clock: Clock | None = run_options.get("clock")
    async with _session(db, store) as session:
        state = await load_state(session.store, run_id)
        if iteration is None:
            iteration = max((it for nid, it in state.nodes if nid == node), default=0)
        if state.node(node, iteration) is None:
            known = state.node_ids()
            raise NodeNotFoundError(run_id, node, known)
        if state.status == "continued":
            new = state.continued_as_run_id or "the new run"
            raise RunNotResumableError(
                run_id, state.status, f"it continued as run {new}; retry the task there"
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
            allow_nondeterminism=bool(run_options.get("allow_nondeterminism")),
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
                actor=who,
            )
        )
        in_loop = enclosing_loop(wf, state, node)
        if in_loop is not None:
            loop_id, loop_nodes = in_loop
            events.append(
                LoopRewound(
                    run_id=run_id,
                    timestamp_ms=now,
                    loop_id=loop_id,
                    iteration=iteration,
                    node_ids=tuple(loop_nodes),
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
    options["allow_nondeterminism"] = True  # its last frame was checked above
    try:
        result = await run_workflow(
            wf, run_id=run_id, resume=True, force=force, actor=who, **target, **options
        )
    except BaseException as e:
        with anyio.CancelScope(shield=True):
            await _retry_finished(db, store, run_id, node, iteration, resets, clock, error=e)
        raise
    if result.status in TERMINAL_RUN_STATUSES:
        # Recorded by the run's end already (then this adds nothing); a run that parked
        # (waiting for an approval, say) keeps the retry open until its end closes it.
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
    """Append ``RetryTaskFinished`` unless the run's end did; on failure only log it."""
    try:
        async with _session(db, store) as session:
            state = await load_state(session.store, run_id)
            if state.open_retry is None:
                return  # the run's end recorded it (`Decider._close_retry`)
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
