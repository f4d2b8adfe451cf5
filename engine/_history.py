"""Rebuilding a run's state from its log (the read side of every engine operation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from smithers.projections import RunState, fold_stored

from .errors import RunNotFoundError

if TYPE_CHECKING:
    from smithers.eventstore import EventStore

__all__ = ("load_state",)


async def load_state(store: EventStore, run_id: str, *, upto_seq: int | None = None) -> RunState:
    """Fold the run's log (up to `upto_seq`) into its `RunState`. Awaits reads.

    Raises:
        RunNotFoundError: if the run has no events (up to `upto_seq`).
    """
    rows = await store.read(run_id, upto_seq=upto_seq)
    if not rows:
        raise RunNotFoundError(run_id)
    return fold_stored(run_id, rows)
