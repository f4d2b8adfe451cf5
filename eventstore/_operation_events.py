"""Events of operations that stop or remove runs: hijacking a run, deleting runs (gc).

Part of the event catalogue; import these from `smithers.eventstore.events`, which
re-exports every event (the tag on disk is the class name, not the module).
"""

from __future__ import annotations

from ._event_base import Actor, AttemptEvent, Event

__all__ = ("RunHijackRequested", "RunHijacked", "RunsDeleted")


# --------------------------------------------------------------------------- hijack


class RunHijackRequested(Event, frozen=True, kw_only=True):
    """A person asked to take over one of the run's agent sessions interactively.

    Appended by ``smithers hijack`` (`smithers.engine.hijack_run`); the run's live
    owner stops its tasks, records `RunHijacked` and parks the run ``"waiting-resume"``.
    With no live owner the requester records those itself, in the same append.
    """

    target: str | None = None
    """Node id whose agent session to hijack; None for the run's latest agent session."""
    actor: Actor | None = None
    """Who asked, and why (None in logs written before the audit trail)."""


class RunHijacked(AttemptEvent, frozen=True, kw_only=True):
    """An agent attempt was stopped and its session handed over to a person.

    The attempt itself ends ``NodeCancelled`` (reason ``"hijacked"``); the run parks
    ``"waiting-resume"`` until ``smithers up --resume``, whose next attempt continues
    the same session (`resume`).
    """

    engine: str
    """Agent engine of the hijacked attempt, e.g. ``"claude-code"``."""
    mode: str
    """How the session is handed over: ``"native-cli"`` (the agent's own CLI resumes
    it interactively)."""
    resume: str | None = None
    """Agent session id the person resumes, if any."""
    cwd: str
    """Working directory of the hijacked session (where to run the CLI)."""


# --------------------------------------------------------------------------- retention


class RunsDeleted(Event, frozen=True, kw_only=True):
    """``smithers gc`` deleted whole finished runs: an operation with no run left to hold it.

    Recorded in the database's audit stream (`run_id` ``"_audit"``, see
    `smithers.engine.AUDIT_STREAM_ID`). Not in Smithers' catalogue.
    """

    run_ids: tuple[str, ...]
    """The runs deleted, whole or (with `keep_audit`) all but their audit rows."""
    finished_before_ms: int
    """The cutoff: runs whose last event is older than this (Unix epoch ms) went."""
    keep_audit: bool = False
    """True if each run kept its operation events and last row (status ``collected``)."""
    include_forked_from: bool = False
    """True if runs other runs fork from could be deleted too."""
    deleted_events: int = 0
    """How many event rows were deleted."""
    actor: Actor | None = None
    """Who deleted them (`resolve_actor`), or None."""
