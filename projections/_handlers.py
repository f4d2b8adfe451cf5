"""The fold's handler registry: `_on` registers a fold step per event type.

`apply_event` (`_apply`) dispatches on it; the handlers live with the state they fold:
run, node and frame events in `_apply`, waits and agents in `_apply_waits`, loops in
`_apply_loops`. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

import msgspec
from smithers.eventstore.events import ErrorInfo, Event

from ._run_state import AttemptRecord, NodeRecord, RunState

__all__ = ("_HANDLERS", "_end_attempt", "_on", "_rec")

_E = TypeVar("_E", bound=Event)

_Handler = Callable[[RunState, _E, int], None]
"""A fold step for event type `_E`: ``(state, event, seq)``, updating `state` in place."""

_HANDLERS: dict[type[Event], Callable[..., None]] = {}
"""The handler of each event type the fold handles, by exact type.

A dict cannot tie each key to its value's parameter type, so values are stored as
``Callable[..., None]``; `_on` is the only writer, and its signature makes each
handler accept its key's type, so `apply_event`'s call is sound."""


def _on(cls: type[_E]) -> Callable[[_Handler[_E]], _Handler[_E]]:
    """Register the decorated function as the fold step for events of type `cls`."""

    def register(handler: _Handler[_E]) -> _Handler[_E]:
        if cls in _HANDLERS:
            raise RuntimeError(f"two fold handlers for {cls.__name__}")
        _HANDLERS[cls] = handler
        return handler

    return register


def _rec(state: RunState, node_id: str, iteration: int) -> NodeRecord:
    """The node's record, or a fresh pending one for a node not seen yet."""
    rec = state.nodes.get((node_id, iteration))
    return rec if rec is not None else NodeRecord(node_id=node_id, iteration=iteration)


def _end_attempt(
    rec: NodeRecord,
    attempt: int | None,
    *,
    state: Literal["finished", "failed", "cancelled"],
    at_ms: int,
    error: ErrorInfo | None = None,
    cancel_reason: str | None = None,
) -> tuple[AttemptRecord, ...]:
    attempts = rec.attempts
    for i in range(len(attempts) - 1, -1, -1):
        a = attempts[i]
        if (attempt is None and a.state == "running") or a.attempt == attempt:
            ended = msgspec.structs.replace(
                a, state=state, finished_at_ms=at_ms, error=error, cancel_reason=cancel_reason
            )
            return (*attempts[:i], ended, *attempts[i + 1 :])
    return attempts
