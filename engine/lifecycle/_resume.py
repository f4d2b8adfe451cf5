"""Resume a run from its log (`resume_run`), with the workflow it recorded; wake a parent.

Split from `_control` (cancel and down); the lifecycle package re-exports all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from smithers.eventstore import EventStore, decode_json

from .._stores import open_existing_store
from ..activation import DEFAULT_HOLD_MS
from ..authoring import load_named_workflow
from ..errors import RunNotResumableError
from ..history import load_state
from ._actors import api_actor
from ._control import _check_run_id
from ._ownership import DEFAULT_STALE_THRESHOLD_MS
from ._resume_checks import NOT_RESUMABLE, not_resumable
from ._run import _DEFAULT, _result, run_workflow
from ._subflow import ENDED_STATUSES, wake_parent

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from smithers.eventstore.events import Actor, Event
    from smithers.projections import RunState

    from .._clock import Clock
    from ..authoring import Workflow
    from ._run import RunResult

__all__ = ("load_recorded_workflow", "resume_run", "wake_parent_of")


def load_recorded_workflow(state: RunState) -> tuple[Workflow, Path]:
    """Import the workflow a run recorded (its file, and its name if the file has several).

    Runs the file's module-level code in this process, as `load_workflow` does.

    Args:
        state: The run's folded state (its `workflow_path` and `workflow_name`).

    Returns:
        ``(workflow, absolute path of its file)``.

    Raises:
        RunNotResumableError: if the run recorded no workflow file (it was started
            from Python code) or the file no longer exists.
        WorkflowMissingDefaultError: if the file no longer defines that workflow.
        EngineError: code ``INVALID_INPUT`` if the file raises while importing.
    """
    path = state.workflow_path
    if not path:
        raise RunNotResumableError(
            state.run_id,
            state.status,
            "its log records no workflow file (it was started from Python code); "
            "resume it with run_workflow(wf, run_id=..., resume=True)",
        )
    if not Path(path).is_file():
        raise RunNotResumableError(
            state.run_id, state.status, f"its workflow file {path} no longer exists"
        )
    return load_named_workflow(path, state.workflow_name)


async def resume_run(
    run_id: str,
    *,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    force: bool = False,
    max_concurrency: int | None = None,
    on_progress: Callable[[Event], Any] | None = None,
    cancel: Any = None,
    log_dir: str | os.PathLike[str] | None = _DEFAULT,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    clock: Clock | None = None,
    allow_nondeterminism: bool = False,
    hold_ms: int = DEFAULT_HOLD_MS,
    by: str | None = None,
    reason: str | None = None,
    actor: Actor | None = None,
) -> RunResult:
    """Resume a run by id alone: workflow file, input and config come from its log.

    Loads the workflow file the run recorded (`load_recorded_workflow`), then calls
    `run_workflow(..., run_id=run_id, resume=True)` with the recorded config (max
    concurrency, root dir, network, tool limits). Finished nodes are not run again;
    attempts a crash left open are closed (``abandoned``) and run again. A finished run
    is returned as it is, without importing its workflow or appending anything.

    Args:
        run_id: The run to resume.
        db: Database path (see `resolve_db_path`; the file must exist). With `store`,
            it only locates the default NDJSON mirror (no mirror when None).
        store: An open store to use instead of opening `db` (not closed here): the
            run is loaded and driven through it.
        force: Take over a run whose owner on another host still looks alive.
        max_concurrency: Override the recorded run-wide task cap.
        on_progress: Called with every event after it is recorded.
        cancel: As `run_workflow`'s `cancel` (optional `source`/`reason` attributes).
        log_dir: Directory of the NDJSON mirror (default: next to the database).
        stale_threshold_ms: An owner silent for this long (ms) is stale and may be
            taken over (see `judge_owner`).
        clock: Time source (tests pass a fake).
        allow_nondeterminism: Resume although the workflow no longer renders the run's
            last recorded frame as the log has it (see `check_determinism`).
        hold_ms: As `run_workflow`'s: when only waiting nodes are left, sleep in this
            process if the next timer or timeout is at most this many ms away, else
            park (0 parks at once; default 60 s).
        by: Who resumes it, recorded on its ``RunStarted`` (``actor``); None:
            ``$SMITHERS_ACTOR``, else the OS user.
        reason: Why, recorded with `by`.
        actor: The `Actor` to record instead of one built from `by` and `reason`
            (interface ``"api"``); a parent this resume wakes records it too.

    Returns:
        The `RunResult` of the resumed activation (or of the finished run).

    Raises:
        RunNotFoundError: if the run has no events.
        RunNotResumableError: if the run was cancelled or continued, recorded no
            workflow file, or its file is gone.
        RunOwnerAliveError, RunStillRunningError: if the run's owner still lives.
        ResumeMetadataMismatchError: if the workflow's code changed since the run began.
        ResumeFrameMismatchError: if the workflow re-renders the run's last recorded
            frame differently (not with `allow_nondeterminism`); nothing is recorded.
        ResumeClaimFailedError: if another process claimed the run first.
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
        InvalidInputError: ``INVALID_INPUT`` for a bad run id, `by` or `reason`.

    Example:
        >>> result = await resume_run("run-lx2k3j-1a2b3c", db="runs.db")  # doctest: +SKIP
    """
    _check_run_id(run_id)
    who = api_actor(actor, by=by, reason=reason)
    if store is not None:
        state = await load_state(store, run_id)
    else:
        opened = await open_existing_store(db)
        try:
            state = await load_state(opened, run_id)
        finally:
            await opened.close()
    if state.status == "finished":
        return _result(state)
    if state.status in NOT_RESUMABLE:
        raise not_resumable(state)
    wf, path = load_recorded_workflow(state)
    config = decode_json(state.config)
    if not isinstance(config, dict):
        config = {}
    options: dict[str, Any] = {}
    for key, option in (
        ("rootDir", "root_dir"),
        ("allowNetwork", "allow_network"),
        ("maxOutputBytes", "max_output_bytes"),
        ("toolTimeoutMs", "tool_timeout_ms"),
        ("maxTaskOutputBytes", "max_task_output_bytes"),
    ):
        if config.get(key) is not None:
            options[option] = config[key]
    recorded_cap = config.get("maxConcurrency")
    result = await run_workflow(
        wf,
        run_id=run_id,
        resume=True,
        force=force,
        db=db,
        store=store,
        max_concurrency=max_concurrency or (recorded_cap if isinstance(recorded_cap, int) else 4),
        on_progress=on_progress,
        cancel=cancel,
        log_dir=log_dir,
        workflow_path=path,
        stale_threshold_ms=stale_threshold_ms,
        clock=clock,
        allow_nondeterminism=allow_nondeterminism,
        hold_ms=hold_ms,
        actor=who,
        **options,
    )
    await wake_parent_of(
        run_id, result, db=db, store=store, stale_threshold_ms=stale_threshold_ms, actor=who
    )
    return result


async def wake_parent_of(
    run_id: str,
    result: RunResult,
    *,
    db: str | os.PathLike[str] | None,
    store: EventStore | None,
    **options: Any,
) -> None:
    """After an activation of run `run_id` that is a `Subflow`'s child: wake its parent.

    For a child resumed on its own (a decision, a signal, a due timer) that ended
    (`result`): its parent, waiting on it, goes on now (`wake_parent`: a parked parent
    is resumed here, with `resume_run` and `options`; a live one gets a request). Does
    nothing for a run that is no child or has not ended. Awaits I/O, through a store of
    its own if `store` is None.
    """
    if result.status not in ENDED_STATUSES:
        return
    opened = store if store is not None else await open_existing_store(db)
    try:
        child = await load_state(opened, run_id)
        if child.subflow_of is None:
            return

        async def resume(parent_id: str) -> RunResult:
            return await resume_run(parent_id, db=db, store=store, **options)

        await wake_parent(child, resume, store=opened)
    finally:
        if store is None:
            with anyio.CancelScope(shield=True):
                await opened.close()
