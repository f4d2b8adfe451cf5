"""Rebuilding a run's state from its log (the read side of every engine operation).

A forked run's log starts with `RunForked`: its state is the parent's state at
`parent_seq` (rebuilt the same way, recursively) with the reset nodes pending, then the
child's own events. Rewinds inside a log are handled by the fold (`fold_stored`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from smithers.eventstore import decode_event
from smithers.eventstore.events import RunForked
from smithers.projections import RunState, fold_stored, fork_state

from .errors import RunNotFoundError

if TYPE_CHECKING:
    from smithers.eventstore import EventStore

__all__ = ("load_state",)

_MAX_ANCESTRY = 1_000
"""Deepest fork chain followed (a guard against a corrupt, cyclic ancestry)."""


async def load_state(
    store: EventStore, run_id: str, *, upto_seq: int | None = None, _depth: int = 0
) -> RunState:
    """Fold the run's log (up to `upto_seq`) into its `RunState`. Awaits reads.

    Raises:
        RunNotFoundError: if the run has no events (up to `upto_seq`), or a fork's parent
            is missing.
    """
    rows = await store.read(run_id, upto_seq=upto_seq)
    if not rows:
        raise RunNotFoundError(run_id)
    base = None
    first = decode_event(rows[0].type, rows[0].data)
    if isinstance(first, RunForked) and _depth < _MAX_ANCESTRY:
        parent = await load_state(
            store, first.parent_run_id, upto_seq=first.parent_seq, _depth=_depth + 1
        )
        base = fork_state(parent, first, run_id=run_id)
    return fold_stored(run_id, rows, base=base)
