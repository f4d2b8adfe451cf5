"""What a hijack stops and records: the agent session it hands to a person (pure).

``smithers hijack`` (`smithers.engine.hijack_run`) appends `RunHijackRequested`; the
run's owner (the `Decider`) stops every running attempt (``NodeCancelled`` reason
``"hijacked"``), then records `hijacked_events`: `RunHijacked` for the agent session
and ``RunStatusChanged("waiting-resume")``. A hijacked run is parked, not ended:
``smithers up --resume`` runs the stopped tasks again, and a CLI agent's next attempt
continues the same session (its id is the node's heartbeat payload). When no process
owns the run, the requester records the same events itself (with `close_for_hijack`
for attempts a crash left open).

No I/O and no clock: callers pass the state and the time.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec
from smithers.eventstore import decode_json
from smithers.eventstore.events import Event, NodeCancelled, RunHijacked, RunStatusChanged

from ..agents import INTERACTIVE_RESUME, session_info

if TYPE_CHECKING:
    from smithers.projections import NodeRecord, RunState

__all__ = (
    "HIJACK_MODE",
    "HIJACK_REASON",
    "HIJACK_STATUS",
    "AgentSession",
    "agent_sessions",
    "close_for_hijack",
    "find_agent_session",
    "hijacked_events",
)

HIJACK_REASON = "hijacked"
"""`NodeCancelled.reason` of the attempts a hijack stops."""
HIJACK_MODE = "native-cli"
"""`RunHijacked.mode`: the agent's own CLI resumes the session interactively."""
HIJACK_STATUS = "waiting-resume"
"""The status a hijacked run parks in: nothing wakes it but ``smithers up --resume``."""


class AgentSession(msgspec.Struct, frozen=True, kw_only=True):
    """A CLI agent session a node saved in its heartbeat payload."""

    node_id: str
    iteration: int
    attempt: int
    """The node's latest attempt (the one a hijack stops or last ran)."""
    engine: str
    """``"claude-code"``, ``"codex"`` or ``"gemini"``."""
    session_id: str
    cwd: str
    """Absolute folder the CLI ran in (the run's root when the payload has none)."""
    running: bool
    """Whether the node's latest attempt is still running."""
    started_at_ms: int
    """Unix epoch ms its latest attempt started."""


def _root_of(state: RunState) -> str:
    """The run's sandbox root: its recorded ``rootDir``, else its workflow's folder."""
    config = decode_json(state.config)
    root = config.get("rootDir") if isinstance(config, dict) else None
    if isinstance(root, str) and root:
        return root
    if state.workflow_path:
        return os.path.dirname(state.workflow_path)
    return os.getcwd()


def _session_of(rec: NodeRecord, root: str) -> AgentSession | None:
    if not rec.attempts:
        return None
    info = session_info(decode_json(rec.heartbeat_data))
    if info is None or info.engine not in INTERACTIVE_RESUME:
        return None  # no session, or one no CLI opens interactively
    last = rec.attempts[-1]
    return AgentSession(
        node_id=rec.node_id,
        iteration=rec.iteration,
        attempt=last.attempt,
        engine=info.engine,
        session_id=info.session_id,
        cwd=info.cwd or root,
        running=rec.state == "running",
        started_at_ms=last.started_at_ms,
    )


def agent_sessions(state: RunState) -> list[AgentSession]:
    """Every node of the run with a CLI agent session: running ones first, then newest.

    A session counts when its engine has an interactive resume (`INTERACTIVE_RESUME`).

    Args:
        state: The run's folded state.

    Returns:
        One `AgentSession` per node (and iteration) whose heartbeat payload names a
        session; running attempts first, each group newest attempt first.
    """
    root = _root_of(state)
    found = [s for rec in state.nodes.values() if (s := _session_of(rec, root)) is not None]
    found.sort(key=lambda s: (s.running, s.started_at_ms, s.iteration), reverse=True)
    return found


def find_agent_session(state: RunState, node_id: str | None) -> AgentSession | None:
    """The session a hijack of `node_id` takes (None: the run's latest, running first).

    Of a node in several loop iterations, its latest iteration with a session.
    """
    sessions = agent_sessions(state)
    if node_id is None:
        return sessions[0] if sessions else None
    mine = [s for s in sessions if s.node_id == node_id]
    return max(mine, key=lambda s: (s.iteration, s.started_at_ms)) if mine else None


def close_for_hijack(state: RunState, *, now_ms: int) -> list[Event]:
    """``NodeCancelled(reason="hijacked")`` for each attempt `state` shows as running.

    For a run whose owner is gone: its open attempts are closed as a live owner's
    hijack closes them (a resume then runs them again).
    """
    return [
        NodeCancelled(
            run_id=state.run_id,
            timestamp_ms=now_ms,
            node_id=rec.node_id,
            iteration=rec.iteration,
            attempt=rec.attempts[-1].attempt if rec.attempts else None,
            reason=HIJACK_REASON,
        )
        for rec in state.nodes.values()
        if rec.state == "running"
    ]


def hijacked_events(state: RunState, target: str | None, *, now_ms: int) -> list[Event]:
    """What parks a hijacked run once nothing runs: `RunHijacked` and the park.

    Args:
        state: The run's state, its hijacked attempts already closed.
        target: The node the request named (`RunHijackRequested.target`), or None.
        now_ms: Unix epoch ms of the events.

    Returns:
        `RunHijacked` for the session of `target` (none if it has no session), then
        ``RunStatusChanged("waiting-resume")`` unless the run is parked so already.
    """
    events: list[Event] = []
    session = find_agent_session(state, target)
    if session is not None:
        events.append(
            RunHijacked(
                run_id=state.run_id,
                timestamp_ms=now_ms,
                node_id=session.node_id,
                iteration=session.iteration,
                attempt=session.attempt,
                engine=session.engine,
                mode=HIJACK_MODE,
                resume=session.session_id,
                cwd=session.cwd,
            )
        )
    if state.status != HIJACK_STATUS:
        events.append(
            RunStatusChanged(run_id=state.run_id, timestamp_ms=now_ms, status=HIJACK_STATUS)
        )
    return events
