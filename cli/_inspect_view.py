"""What ``inspect`` reads: a run's state and the tree that orders its nodes.

The nodes of a `RunState` are in mount order (the order of their first `NodePending`),
which is not the workflow's order when a task mounts late (``first and Task(...)``
before tasks mounted at once). ``inspect`` lists them in the order of the tree the
engine last rendered: the run's last frame, or for a fork that has not rendered yet
the parent's frame it was forked at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smithers.eventstore import SmithersError

if TYPE_CHECKING:
    from smithers.engine import Client, Operation
    from smithers.projections import RunState

__all__ = ("RECENT_OPERATIONS", "inspect_view", "recent_operations")

RECENT_OPERATIONS = 5
"""How many of a run's operations ``inspect`` shows (``smithers audit RUN`` has them all)."""


async def inspect_view(client: Client, run_id: str) -> tuple[RunState, dict[str, Any] | None]:
    """Return the run's state and its last rendered tree (None if there is none).

    Awaits reads: the state, then the frame's tree (`RunHandle.frame_view`). A tree
    that cannot be rebuilt (a log recorded without trees, a corrupt frame) is None:
    ``inspect`` then keeps mount order rather than fail.

    Raises:
        RunNotFoundError: if the run does not exist.
    """
    run = await client.get_run(run_id)
    state = await run.state()
    try:
        if state.frames:
            return state, (await run.frame_view(state.frames[-1].frame_no)).tree
        if state.parent_run_id is not None and state.parent_frame_no is not None:
            parent = await client.get_run(state.parent_run_id)
            return state, (await parent.frame_view(state.parent_frame_no)).tree
    except SmithersError:
        pass
    return state, None


async def recent_operations(
    client: Client, run_id: str, limit: int = RECENT_OPERATIONS
) -> list[Operation]:
    """Return the run's last `limit` operations, newest first (`Client.audit`).

    The run's own (and the supervisor's on it), not its forks'. Awaits reads.

    Raises:
        RunNotFoundError: if the run does not exist.
    """
    return await client.audit(run_id, limit=limit, related=False)
