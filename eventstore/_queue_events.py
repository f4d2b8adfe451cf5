"""Events of the run queue: a run submitted for a worker to start (``smithers submit``).

Part of the event catalogue; import these from `smithers.eventstore.events`, which
re-exports every event (the tag on disk is the class name, not the module).
"""

from __future__ import annotations

import msgspec  # noqa: TC002 (msgspec resolves Struct annotations at run time)

from ._event_base import NULL_RAW, Actor, Event

__all__ = ("DEFAULT_QUEUE", "RunQueued")

DEFAULT_QUEUE = "default"
"""The queue a run is submitted to when none is named."""


class RunQueued(Event, frozen=True, kw_only=True):
    """The run was submitted to a queue: recorded, not started (status ``queued``).

    A run's first event when it is submitted (``smithers submit``) rather than started.
    It records what the run is, as the first `RunStarted` does (workflow, input,
    config); a worker claims the run by appending its first `RunStarted` with
    ``expected_seq`` = this event's seq, so of two workers racing exactly one wins,
    and that `RunStarted` refers to the input recorded here (``inputRef``). Not in
    Smithers' catalogue (smithers-py's run queue).
    """

    workflow_name: str = ""
    """Name given to ``@workflow``."""
    workflow_path: str | None = None
    """Absolute path of the workflow file the worker loads."""
    workflow_hash: str | None = None
    """SHA-256 over the workflow file and its locally imported modules at submit time."""
    input: msgspec.Raw = NULL_RAW
    """The run's input as JSON (validated against the workflow's input schema)."""
    input_hash: str | None = None
    """SHA-256 hex digest of the input's JSON bytes."""
    config: msgspec.Raw = NULL_RAW
    """Run options as JSON (e.g. ``maxConcurrency``), as `RunStarted.config`."""
    queue: str = DEFAULT_QUEUE
    """The queue it waits in; a worker started with ``--queues`` takes only those."""
    priority: int = 0
    """Higher first; among equal priorities, the earlier submitted first."""
    actor: Actor | None = None
    """Who submitted it, and why (the audit trail)."""
