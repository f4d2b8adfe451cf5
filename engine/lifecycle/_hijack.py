"""Hijack a run: stop it, park it resumable, and hand an agent session to a person.

``smithers hijack RUN [--node ID]`` (issue 11). Like a cancel (`_control`), the hijack
is a request appended to the run's log (`RunHijackRequested`, with its `Actor`) that a
live owner consumes at its next heartbeat: it stops its running attempts
(``NodeCancelled`` reason ``"hijacked"``: the CLI agent's whole process group is
killed), records `RunHijacked` and parks the run ``"waiting-resume"``
(`smithers.engine.activation.hijacked_events`). Unlike a cancel the run is not ended:
``smithers up --resume RUN`` runs the stopped tasks again, and a CLI agent's next
attempt continues the session the person worked in (its id is the node's heartbeat
payload). When no live owner listens (it died, or the run is parked), or it does not
stop within `wait_ms`, the requester records the same events itself in one append
guarded by `expected_seq`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import anyio
import msgspec
from smithers.eventstore import EventStore, SeqConflictError
from smithers.eventstore.events import TERMINAL_RUN_STATUSES, Event, RunHijackRequested

from .._clock import Clock, SystemClock
from .._shell import shell_command
from .._stores import open_existing_store
from ..activation import (
    HIJACK_STATUS,
    AgentSession,
    append_to_run,
    close_for_hijack,
    default_log_dir,
    find_agent_session,
    hijacked_events,
)
from ..agents import interactive_command
from ..errors import (
    InvalidInputError,
    NodeNotFoundError,
    RunNotResumableError,
    TaskHijackUnsupportedError,
)
from ..history import load_state
from ._control import _append_request, _check_run_id, _db_path, _listens, _wait_for_owner
from ._ownership import DEFAULT_STALE_THRESHOLD_MS, judge_owner

if TYPE_CHECKING:
    import os
    from collections.abc import Callable
    from pathlib import Path

    from smithers.eventstore.events import Actor
    from smithers.projections import RunState

__all__ = ("HijackResult", "HijackStep", "hijack_run")

HijackStep = Literal["requested", "finalizing"]
"""What `hijack_run` reports to `on_step`: ``"requested"`` once the request is in the
log and the live owner is waited for; ``"finalizing"`` when the requester records the
hijack itself (no live owner, a parked run, or an owner that did not stop in time)."""

_POLL_S = 0.15
"""How often the requester looks at the log while it waits for the owner (seconds)."""
_ROUNDS = 25
"""Attempts of the hijack's append before it gives up on a run others keep appending to."""


class HijackResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What a hijack did, and how a person opens the session (``smithers hijack --json``)."""

    run_id: str
    status: str
    """The run's status after the hijack: ``"waiting-resume"``."""
    action: Literal["requested", "recorded"]
    """``"requested"``: the live owner stopped and recorded it; ``"recorded"``: this call
    did (no live owner, or it did not stop in time)."""
    node_id: str
    iteration: int
    attempt: int
    """The node's attempt that was stopped (or last ran)."""
    engine: str
    """``"claude-code"``, ``"codex"`` or ``"gemini"``."""
    session_id: str
    cwd: str
    """Absolute folder to open the session in."""
    command: str
    """The shell command that opens the session interactively (``cd <cwd> && …``)."""
    resume_command: str
    """The command that continues the run afterwards (``smithers up --resume RUN``)."""


def _pick(state: RunState, node_id: str | None) -> AgentSession:
    """The session to hand over, or the reason there is none.

    Raises:
        NodeNotFoundError: if `node_id` is not a node of the run.
        TaskHijackUnsupportedError: if the node has no CLI agent session (one whose
            engine has an interactive resume).
        InvalidInputError: without `node_id`, if no node of the run has a session.
    """
    session = find_agent_session(state, node_id)
    if session is None and node_id is not None:
        known = sorted({rec.node_id for rec in state.nodes.values()})
        if node_id not in known:
            raise NodeNotFoundError(state.run_id, node_id, known)
        raise TaskHijackUnsupportedError(state.run_id, node_id)
    if session is None:
        raise InvalidInputError(
            f"Run {state.run_id!r} has no agent session to hijack: no coding-agent task "
            "(Claude Code, Codex, Gemini CLI) has reported a session id yet.",
            details={"runId": state.run_id},
            hint="Wait until an agent task has started, then try again; see its tasks "
            "with `smithers inspect RUN`.",
        )
    return session


def _refuse_ended(state: RunState, session: AgentSession | None) -> RunNotResumableError:
    """The refusal to hijack a run that ended; names the session's command if known."""
    why = f"it has ended ({state.status}); only a running or parked run can be hijacked"
    if state.status == "pending":
        why = "it has not started yet (a fork never run); start it with `smithers up --resume`"
    if session is not None:
        command = interactive_command(session.engine, session.session_id, session.cwd)
        why += f". Its agent session can still be opened by hand: {command}"
    return RunNotResumableError(state.run_id, state.status, why)


async def hijack_run(
    run_id: str,
    *,
    node_id: str | None = None,
    db: str | os.PathLike[str] | None = None,
    store: EventStore | None = None,
    actor: Actor | None = None,
    wait_ms: int = 10_000,
    stale_threshold_ms: int = DEFAULT_STALE_THRESHOLD_MS,
    on_step: Callable[[HijackStep], Any] | None = None,
    clock: Clock | None = None,
) -> HijackResult:
    """Stop a run, park it ``"waiting-resume"`` and return its agent session's command.

    The session is `node_id`'s (its latest iteration with one), else the run's latest
    (running attempts first). It is checked before anything is appended. A live owner
    is asked (`RunHijackRequested`) and waited for; with none, or one that has not
    stopped after `wait_ms`, this call records the hijack itself in one append:
    `RunHijackRequested` (unless already appended), ``NodeCancelled`` (reason
    ``"hijacked"``) for each attempt left running, `RunHijacked` and
    ``RunStatusChanged("waiting-resume")``; then it deletes the run's lease (a slow
    owner stops when it sees the log moved on). A run already ``"waiting-resume"``
    gets the request and `RunHijacked` only. Awaits I/O.

    Args:
        run_id: The run to hijack.
        node_id: The node whose session to take; None: the latest agent session.
        db: Database path (see `resolve_db_path`; the file must exist). With `store`,
            it only locates the NDJSON mirror.
        store: An open store to use instead of `db` (not closed here).
        actor: Who asks and why (`resolve_actor`), recorded on the request.
        wait_ms: How long to wait for a live owner to stop before recording (ms).
        stale_threshold_ms: How long (ms) an owner may be silent before it is stale.
        on_step: Called with ``"requested"`` / ``"finalizing"`` (see `HijackStep`).
        clock: Time source (tests pass a fake).

    Returns:
        The `HijackResult`: the session, the command that opens it, the run's status.

    Raises:
        RunNotFoundError: if the run has no events.
        InvalidInputError: if `run_id` is invalid or the supervisor's stream, or no
            node of the run has an agent session (without `node_id`).
        NodeNotFoundError: if `node_id` is not a node of the run.
        TaskHijackUnsupportedError: if that node has no resumable agent session.
        RunNotResumableError: if the run has ended (finished, failed, cancelled,
            continued) or never started.
        SeqConflictError: if others kept appending through every attempt (25).
        SmithersError: code ``CLI_DB_NOT_FOUND`` if there is no database file.
    """
    _check_run_id(run_id)
    own = store is None
    path = _db_path(db, own)
    if store is None:
        store = await open_existing_store(path)
    try:
        log_dir = default_log_dir(path, run_id) if path is not None else None
        return await _hijack(
            store,
            run_id,
            node_id,
            actor,
            wait_ms,
            stale_threshold_ms,
            on_step,
            clock or SystemClock(),
            log_dir,
        )
    finally:
        if own:
            with anyio.CancelScope(shield=True):
                await store.close()


async def _hijack(
    store: EventStore,
    run_id: str,
    node_id: str | None,
    actor: Actor | None,
    wait_ms: int,
    stale_ms: int,
    on_step: Callable[[HijackStep], Any] | None,
    clock: Clock,
    log_dir: Path | None,
) -> HijackResult:
    state = await load_state(store, run_id)
    if state.status in TERMINAL_RUN_STATUSES or state.status == "pending":
        raise _refuse_ended(state, find_agent_session(state, node_id))
    session = _pick(state, node_id)
    target = session.node_id
    asked: set[str] = set()
    requested = False  # a RunHijackRequested of ours is in the log
    reported = False
    conflict: SeqConflictError | None = None
    for _ in range(_ROUNDS):
        state = await load_state(store, run_id)
        if requested and state.status == HIJACK_STATUS:
            return _result(state, target, "requested")
        if state.status in TERMINAL_RUN_STATUSES:
            raise _refuse_ended(state, find_agent_session(state, target))
        lease = await store.get_lease(run_id)
        now = clock.now_ms()
        verdict = judge_owner(state, lease, now_ms=now, stale_threshold_ms=stale_ms)
        owner = verdict.owner_id or str(verdict.pid)
        request = RunHijackRequested(run_id=run_id, timestamp_ms=now, target=target, actor=actor)
        if state.status == "running" and owner not in asked and _listens(verdict):
            if not await _append_request(store, request, state.seq, log_dir):
                continue  # it ended meanwhile
            requested = True
            asked.add(owner)
            if on_step is not None:
                on_step("requested")
            await _wait_for_owner(
                store, state, wait_ms, stale_ms, clock, settled=lambda status: status != "running"
            )
            continue  # parked by the owner (returned above), or finalize now
        if on_step is not None and not reported:
            reported = True
            on_step("finalizing")
        events: list[Event] = [] if requested else [request]
        closing = close_for_hijack(state, now_ms=now)
        events += closing
        # The session comes from the heartbeat payload, which closing does not change.
        events += hijacked_events(state, target, now_ms=now)
        try:
            await append_to_run(
                store, run_id, events, expected_seq=state.seq, status=HIJACK_STATUS, log_dir=log_dir
            )
        except SeqConflictError as e:
            conflict = e
            continue
        if lease is not None:
            await store.release_lease(run_id, lease.owner_id)
        return _result(await load_state(store, run_id), target, "recorded")
    assert conflict is not None
    raise conflict


def _result(state: RunState, target: str, action: Literal["requested", "recorded"]) -> HijackResult:
    """The `HijackResult` of a hijacked run's state (its session is `target`'s)."""
    session = find_agent_session(state, target)
    assert session is not None  # checked before the request; a session is never dropped
    command = interactive_command(session.engine, session.session_id, session.cwd)
    assert command is not None
    return HijackResult(
        run_id=state.run_id,
        status=state.status,
        action=action,
        node_id=session.node_id,
        iteration=session.iteration,
        attempt=session.attempt,
        engine=session.engine,
        session_id=session.session_id,
        cwd=session.cwd,
        command=command,
        resume_command=shell_command("up", options=[("--resume", state.run_id)]),
    )
